-- Pure-logic checks of the plugin's modules, run by headless.lua before it
-- talks to berth: returns function(check).
local uv = vim.uv or vim.loop

return function(check)
  local berth = require('berth')
  local tests = require('berth.tests')
  local workspace = require('berth.workspace')
  local progress = require('berth.progress')
  local ports = require('berth.ports')

  -- Nearest pytest node ids.
  local py = {
    'import pytest', -- 1
    '', -- 2
    'def test_top():', -- 3
    '    assert 1', -- 4
    '', -- 5
    'class TestC:', -- 6
    '    def helper(self):', -- 7
    '        pass', -- 8
    '', -- 9
    '    def test_y(self):', -- 10
    '        assert 2', -- 11
    '', -- 12
    'X = 1', -- 13
  }
  local root = '/w'
  local cases = {
    { 4, 'tests/t.py::test_top' },
    { 3, 'tests/t.py::test_top' },
    { 6, 'tests/t.py::TestC' },
    { 11, 'tests/t.py::TestC::test_y' },
    { 13, 'tests/t.py' },
    { 1, 'tests/t.py' },
  }
  for _, c in ipairs(cases) do
    local id = tests.pytest_id(py, c[1], '/w/tests/t.py', root)
    check(id == c[2], 'pytest node id at line ' .. c[1] .. ' is ' .. c[2], tostring(id))
  end
  check(tests.pytest_id(py, 4, '/elsewhere/t.py', root) == nil, 'a file outside the workspace has no node id')

  -- Go test ids: import path from go.mod.
  local tmp = vim.fn.tempname()
  vim.fn.mkdir(tmp .. '/mod/sub', 'p')
  vim.fn.writefile({ 'module example.com/m', '', 'go 1.19' }, tmp .. '/mod/go.mod')
  local go = { 'package sub', '', 'func TestA(t *testing.T) {', '\tx := 1', '}', '', 'func helper() {}' }
  local gid = tests.go_id(go, 4, tmp .. '/mod/sub/a_test.go')
  check(gid == 'example.com/m/sub.TestA', 'go test id in TestA', tostring(gid))
  gid = tests.go_id(go, 7, tmp .. '/mod/sub/a_test.go')
  check(gid == 'example.com/m/sub', 'outside a test: the package', tostring(gid))

  -- Workspaces: a container configuration upward wins over .git.
  vim.fn.mkdir(tmp .. '/a/b/c', 'p')
  vim.fn.mkdir(tmp .. '/a/d', 'p')
  vim.fn.mkdir(tmp .. '/a/.git', 'p')
  vim.fn.writefile({ '{}' }, tmp .. '/a/b/.devcontainer.json')
  local real = uv.fs_realpath(tmp)
  check(workspace.for_dir(tmp .. '/a/b/c') == real .. '/a/b', 'workspace: nearest devcontainer.json',
    workspace.for_dir(tmp .. '/a/b/c'))
  check(workspace.for_dir(tmp .. '/a/d') == real .. '/a', 'workspace: else the nearest .git', workspace.for_dir(tmp .. '/a/d'))
  vim.fn.delete(tmp, 'rf')

  -- Progress: one task, updated in place, gone at its end.
  local shown = {}
  local function show(t)
    table.insert(shown, progress.text(t))
  end
  progress.handle({ token = 'x', value = { kind = 'begin', title = 'berth: up' } }, show)
  progress.handle({ token = 'x', value = { kind = 'report', message = 'creating container' } }, show)
  progress.handle({ token = 'x', value = { kind = 'end' } }, show)
  check(vim.deep_equal(shown, { 'berth: up', 'berth: up: creating container', 'berth: up: creating container … done' })
    and progress.tasks.x == nil, 'progress: begin, report, end update one task', vim.inspect(shown))
  progress.updates = 0

  -- Ports: auto-forward announcements follow onAutoForward.
  local opened, saved_open = {}, berth.open_url
  berth.open_url = function(url)
    table.insert(opened, url)
  end
  local saved_redraw = ports.redraw
  ports.redraw = function() end
  local function changed(list)
    ports.changed({ workspace = '/u', ports = list })
  end
  changed({
    { port = 3000, bindAddress = '0.0.0.0', onAutoForward = 'openBrowserOnce', tunnelId = 'a1', hostPort = 3000, label = 'web' },
    { port = 5432, bindAddress = '127.0.0.1', onAutoForward = 'ignore' },
  })
  changed({ { port = 3000, bindAddress = '0.0.0.0', onAutoForward = 'openBrowserOnce', tunnelId = 'a1', hostPort = 3000 } })
  changed({})
  changed({ { port = 3000, bindAddress = '0.0.0.0', onAutoForward = 'openBrowserOnce', tunnelId = 'a2', hostPort = 3001 } })
  check(vim.deep_equal(opened, { 'http://localhost:3000' }), 'openBrowserOnce opens the browser once', vim.inspect(opened))
  changed({ { port = 8080, bindAddress = '::', onAutoForward = 'openBrowser', tunnelId = 'a3', hostPort = 8081 } })
  check(opened[2] == 'http://localhost:8081', 'openBrowser opens the host port', vim.inspect(opened))
  ports.state['/u'] = {
    ports = { { port = 5432, bindAddress = '127.0.0.1', onAutoForward = 'ignore', process = { pid = 7, name = 'postgres' } },
      { port = 3000, bindAddress = '0.0.0.0', tunnelId = 'a2', label = 'web' } },
    forwards = { { tunnelId = 'a2', direction = 'forward', host = '127.0.0.1', hostPort = 3001, containerPort = 3000, auto = true },
      { tunnelId = 't9', direction = 'forward', host = '127.0.0.1', hostPort = 4000, containerPort = 9999 } },
  }
  local lines, rows = ports.render('/u')
  local text = table.concat(lines, '\n')
  check(text:find('3000%s+0%.0%.0%.0%s+web%s+127%.0%.0%.1:3001 %(a2, auto%)') and text:find('5432%s+127%.0%.0%.1%s+postgres %(7%)')
    and text:find('9999.*127%.0%.0%.1:4000 %(t9%)'), 'the ports list shows ports, processes, labels and forwards', text)
  local by_port = {}
  for _, r in pairs(rows) do
    by_port[r.port] = r
  end
  check(by_port[3000].tunnelId == 'a2' and by_port[3000].hostPort == 3001 and by_port[5432].tunnelId == nil
    and by_port[9999].tunnelId == 't9', 'list rows carry their forwards', vim.inspect(by_port))
  ports.state['/u'], ports.redraw, berth.open_url = nil, saved_redraw, saved_open

  -- The Lua API takes tables, and booleans where the doc once said so.
  local sent = {}
  local saved_request = berth.request
  berth.request = function(method, params)
    sent[method] = params
  end
  berth.down(true)
  berth.up(true)
  berth.down({ remove = true, workspace = '/x' })
  berth.request = saved_request
  check(sent['berth/down'].remove == true and sent['berth/down'].workspace == '/x' and sent['berth/up'].recreate == true
    and sent['berth/up'].workDoneToken ~= nil, 'berth.down(true), berth.up(true) and their table forms', vim.inspect(sent))
end
