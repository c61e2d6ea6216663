-- berth.workspace: which workspace a buffer belongs to. The nearest folder
-- upward with a container configuration (.devcontainer/, .devcontainer.json)
-- wins; else the nearest with .git; else the same from the current
-- directory; else the current directory itself. berth's own
-- buffers (berth://pN, the ports list) carry their workspace in
-- b:berth_workspace.
local uv = vim.uv or vim.loop

local M = {}

M.config_markers = { '.devcontainer', '.devcontainer.json' }
M.vcs_markers = { '.git' }

local function exists(path)
  return uv.fs_stat(path) ~= nil
end

local function parent(dir)
  local p = dir:match('^(.*)/[^/]*$')
  if p == nil or p == '' then
    return '/'
  end
  return p
end

--- The nearest directory at or above dir that holds one of markers, or nil.
function M.find_up(dir, markers)
  dir = dir:gsub('/+$', '')
  if dir == '' then
    dir = '/'
  end
  while true do
    for _, m in ipairs(markers) do
      if exists(dir .. '/' .. m) then
        return dir
      end
    end
    if dir == '/' then
      return nil
    end
    dir = parent(dir)
  end
end

--- The workspace found upward from a directory (absolute path), or nil
--- when no folder above holds a marker.
function M.find(dir)
  local real = uv.fs_realpath(dir) or dir
  return M.find_up(real, M.config_markers) or M.find_up(real, M.vcs_markers)
end

--- The workspace for a directory: found upward, else the directory itself.
function M.for_dir(dir)
  return M.find(dir) or uv.fs_realpath(dir) or dir
end

--- The workspace of buffer buf (0: current): found upward from its file,
--- else from the current directory, else the current directory.
function M.for_buf(buf)
  buf = (buf == nil or buf == 0) and vim.api.nvim_get_current_buf() or buf
  local ok, ws = pcall(vim.api.nvim_buf_get_var, buf, 'berth_workspace')
  if ok and type(ws) == 'string' and ws ~= '' then
    return ws
  end
  local name = vim.api.nvim_buf_get_name(buf)
  local bt = vim.api.nvim_buf_get_option(buf, 'buftype')
  if name ~= '' and bt == '' and not name:match('^%a[%w+.-]*://') then
    local path = vim.fn.fnamemodify(name, ':p')
    local dir = vim.fn.isdirectory(path) == 1 and path or vim.fn.fnamemodify(path, ':h')
    local found = exists(dir) and M.find(dir)
    if found then
      return found
    end
  end
  return M.for_dir(uv.cwd())
end

return M
