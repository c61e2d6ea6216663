-- berth.tests: the test under the cursor, as the id berth/test takes in
-- `tests`: a pytest node id (tests/test_calc.py::TestC::test_y, relative to
-- the workspace) or a Go `importpath.TestName` (a package's import path
-- alone when the cursor is in no test function).
local M = {}

local function rel(path, root)
  root = root:gsub('/+$', '') .. '/'
  if path:sub(1, #root) == root then
    return path:sub(#root + 1)
  end
  return nil
end

local function indent_of(line)
  return #(line:match('^(%s*)') or '')
end

--- The pytest node id for lines (a list) at 1-based row lnum of file
--- path in workspace root; nil if the file is outside it.
function M.pytest_id(lines, lnum, path, root)
  local file = rel(path, root)
  if not file then
    return nil
  end
  local test, test_indent
  for i = math.min(lnum, #lines), 1, -1 do
    local l = lines[i]
    local ind, name = l:match('^(%s*)def (test[%w_]*)%s*%(')
    if not name then
      ind, name = l:match('^(%s*)async def (test[%w_]*)%s*%(')
    end
    if name then
      test, test_indent = name, #ind
      lnum = i
      break
    end
    local cls = l:match('^class (Test[%w_]*)')
    if cls then
      return file .. '::' .. cls, cls
    end
    -- A top-level statement between the cursor and any def above: the
    -- cursor is in no test.
    if l:match('^[%a_@]') then
      return file, file
    end
  end
  if not test then
    return file, file
  end
  if test_indent == 0 then
    return file .. '::' .. test, test
  end
  for i = lnum - 1, 1, -1 do
    local l = lines[i]
    if l:match('%S') and indent_of(l) < test_indent then
      local cls = l:match('^%s*class ([%w_]+)')
      if cls and indent_of(l) == 0 then
        return file .. '::' .. cls .. '::' .. test, test
      end
      break
    end
  end
  return file .. '::' .. test, test
end

--- The Go module path declared in the go.mod of dir or above, with the
--- directory of that go.mod.
function M.go_module(dir)
  local found = require('berth.workspace').find_up(dir, { 'go.mod' })
  if not found then
    return nil
  end
  for _, l in ipairs(vim.fn.readfile(found .. '/go.mod')) do
    local mod = l:match('^%s*module%s+"?([^%s"]+)"?')
    if mod then
      return mod, found
    end
  end
  return nil
end

--- The Go test id for lines at row lnum of file path.
function M.go_id(lines, lnum, path)
  local dir = vim.fn.fnamemodify(path, ':h')
  local mod, moddir = M.go_module(dir)
  if not mod then
    return nil
  end
  local pkg = mod
  local sub = rel(dir, moddir)
  if sub and sub ~= '' then
    pkg = mod .. '/' .. sub
  end
  for i = math.min(lnum, #lines), 1, -1 do
    local name = lines[i]:match('^func%s+((%u)[%w_]*)%s*%(')
    if name then
      if name:match('^Test') or name:match('^Fuzz') or name:match('^Example') then
        return pkg .. '.' .. name, name
      end
      break
    end
    if i < lnum and lines[i]:match('^}') then
      break
    end
  end
  return pkg, pkg
end

--- The nearest test at the cursor of buffer buf in workspace root:
--- {framework, id, name}, or nil with a reason.
function M.nearest(buf, root)
  buf = (buf == nil or buf == 0) and vim.api.nvim_get_current_buf() or buf
  local path = vim.api.nvim_buf_get_name(buf)
  if path == '' then
    return nil, 'the buffer has no file'
  end
  path = vim.fn.fnamemodify(path, ':p')
  local real = (vim.uv or vim.loop).fs_realpath(path)
  path = real or path
  local lines = vim.api.nvim_buf_get_lines(buf, 0, -1, false)
  local lnum = 1
  if vim.api.nvim_get_current_buf() == buf then
    lnum = vim.api.nvim_win_get_cursor(0)[1]
  end
  if path:match('%.py$') then
    local id, name = M.pytest_id(lines, lnum, path, root)
    if not id then
      return nil, path .. ' is outside the workspace ' .. root
    end
    return { framework = 'pytest', id = id, name = name }
  elseif path:match('_test%.go$') then
    local id, name = M.go_id(lines, lnum, path)
    if not id then
      return nil, 'no go.mod above ' .. path
    end
    return { framework = 'go', id = id, name = name }
  end
  return nil, 'not a test file: ' .. path .. ' (a .py file or a _test.go file)'
end

return M
