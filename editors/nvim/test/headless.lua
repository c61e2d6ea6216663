-- Headless end-to-end test of the berth Neovim plugin against the real
-- berth binary and a real Docker daemon. Run by editors/nvim/test/run.sh.
local uv = vim.uv or vim.loop

local failures = 0
local passes = 0
local function pass(msg)
  passes = passes + 1
  io.stdout:write('PASS ' .. msg .. '\n')
end
local function fail(msg)
  failures = failures + 1
  io.stdout:write('FAIL ' .. msg .. '\n')
end
local function check(cond, msg, detail)
  if cond then
    pass(msg)
  else
    fail(msg .. (detail and (': ' .. detail) or ''))
  end
  return cond
end
local skips = 0
local function skip(msg)
  skips = skips + 1
  io.stdout:write('SKIP ' .. msg .. '\n')
end
local function finish()
  io.stdout:flush()
  -- The plain closing line CI reads: "N passed, N failed".
  io.stdout:write(string.format('nvim: %d passed, %d failed, %d skipped\n', passes, failures, skips))
  if failures > 0 then
    io.stdout:flush()
    vim.cmd('cquit 1')
  else
    io.stdout:flush()
    vim.cmd('qall!')
  end
end

local repo = os.getenv('BERTH_REPO') or uv.cwd()
local here = vim.fn.fnamemodify(debug.getinfo(1, 'S').source:sub(2), ':p:h')
local berth_bin = os.getenv('BERTH') or (repo .. '/bin/berth')
local image = os.getenv('BERTH_TEST_DEBIAN_IMAGE') or 'berth-test/debian:2'
local go_image = os.getenv('BERTH_TEST_DEBIAN_GO_IMAGE') or 'berth-test/debian-go:2'
local timeout = tonumber(os.getenv('BERTH_NVIM_TIMEOUT_MS') or '') or 120000

-- Messages: keep them, and echo them to the log for the run's output.
local notes = {}
vim.notify = function(msg, level)
  table.insert(notes, { msg = msg, level = level })
  io.stdout:write(string.format('  [notify %s] %s\n', tostring(level), (msg:gsub('\n', '\n    '))))
end

-- A private copy of pyproj, as the workspace.
local tmp = vim.fn.tempname()
vim.fn.mkdir(tmp, 'p')
local ws = tmp .. '/pyproj'
vim.fn.system({ 'cp', '-r', repo .. '/testdata/workspaces/pyproj', ws })
if vim.v.shell_error ~= 0 then
  fail('copy pyproj')
  finish()
end
ws = uv.fs_realpath(ws)
-- A devcontainer.json, as berth auto-forwards ports for configured
-- workspaces only (not for a bare image).
vim.fn.writefile({ '{"image": "' .. image .. '"}' }, ws .. '/.devcontainer.json')
vim.cmd('cd ' .. vim.fn.fnameescape(ws))

-- failed(method): berth answered that method with an error (stop waiting).
local function failed(method)
  local e = require('berth').last.error
  return e ~= nil and e.method == method
end

local ok, err = pcall(function()
  -- plugin/berth.lua defines the commands before setup() (-u NONE loads no
  -- plugins: source it as Neovim would).
  vim.cmd('runtime! plugin/berth.lua')
  check(vim.fn.exists(':BerthUp') == 2 and vim.fn.exists(':BerthPorts') == 2 and vim.fn.exists(':BerthTest') == 2
    and package.loaded['berth'] ~= nil and require('berth').client == nil, 'plugin/berth.lua: commands before setup()')
  local berth = require('berth')

  dofile(here .. '/unit.lua')(check)

  berth.setup({ cmd = { berth_bin, '--stdio' }, backend = 'docker', image = image })
  check(vim.fn.exists(':BerthUp') == 2 and vim.fn.exists(':BerthRun') == 2 and vim.fn.exists(':BerthTest') == 2
    and vim.fn.exists(':BerthLint') == 2 and vim.fn.exists(':BerthForward') == 2 and vim.fn.exists(':BerthDown') == 2
    and vim.fn.exists(':BerthStatus') == 2, 'commands defined')

  -- :BerthUp
  vim.cmd('BerthUp')
  vim.wait(timeout, function()
    return berth.last.up ~= nil or failed('berth/up')
  end, 50)
  check(berth.last.up ~= nil, ':BerthUp answers')
  local up = berth.last.up or {}
  check(up.state == 'running' and up.workspace == ws, ':BerthUp instance running for the workspace',
    vim.inspect({ state = up.state, workspace = up.workspace }))
  check(berth.server and berth.server.serverInfo and berth.server.serverInfo.name == 'berth', 'initialize answered')
  -- Progress: the up's steps update one message; none of them is a notification.
  local progress = require('berth.progress')
  local step_notes = 0
  for _, n in ipairs(notes) do
    if n.msg:find('creating container', 1, true) or n.msg:find('starting container', 1, true) then
      step_notes = step_notes + 1
    end
  end
  check(progress.updates >= 2 and next(progress.tasks) == nil and step_notes == 0,
    'progress: the up shows as one updating message, not notifications',
    vim.inspect({ updates = progress.updates, tasks = progress.tasks, step_notes = step_notes }))
  check(#vim.tbl_filter(function(m)
    return m.text:find('creating container', 1, true) ~= nil
  end, berth.messages) == 1, "berth's steps are kept for :BerthLog")

  -- :BerthRun echo hello
  vim.cmd('BerthRun echo hello')
  check(vim.wait(timeout, function()
    return berth.last.run ~= nil and berth.last.run.exited
  end, 50), ':BerthRun runs to its exit')
  local run = berth.last.run or {}
  local lines = run.buf and vim.api.nvim_buf_get_lines(run.buf, 0, -1, false) or {}
  check(vim.tbl_contains(lines, 'hello'), ':BerthRun output buffer has "hello"', vim.inspect(lines))
  check(run.buf and vim.api.nvim_buf_get_name(run.buf) == 'berth://' .. run.pid, 'output buffer is named berth://' .. tostring(run.pid))
  check(run.code == 0, ':BerthRun exit code 0', tostring(run.code))

  -- :BerthRun with shell syntax and a failing exit
  berth.last.run = nil
  vim.cmd('BerthRun echo "$((6*7))" && exit 3')
  vim.wait(timeout, function()
    return berth.last.run ~= nil and berth.last.run.exited
  end, 50)
  run = berth.last.run or {}
  lines = run.buf and vim.api.nvim_buf_get_lines(run.buf, 0, -1, false) or {}
  check(vim.tbl_contains(lines, '42') and run.code == 3, ':BerthRun through sh -c: output 42, exit 3',
    vim.inspect({ lines = lines, code = run.code }))

  -- :BerthLint → diagnostics on lint_me.py
  local lint_path = ws .. '/lint_me.py'
  vim.cmd('BerthLint')
  local function lint_diags()
    local b = vim.fn.bufnr(lint_path)
    if b < 0 then
      return {}
    end
    return vim.diagnostic.get(b, { namespace = berth.ns })
  end
  vim.wait(timeout, function()
    return (#lint_diags() > 0 and berth.last.lint ~= nil) or failed('berth/lint')
  end, 50)
  check(#lint_diags() > 0 and berth.last.lint ~= nil, ':BerthLint publishes diagnostics for ' .. lint_path)
  local found
  for _, d in ipairs(lint_diags()) do
    if d.message == "'os' imported but unused" then
      found = d
    end
  end
  check(found and found.lnum == 1 and found.col == 0, "diagnostic \"'os' imported but unused\" at lnum 1, col 0",
    vim.inspect(found or lint_diags()))
  check(found and found.source == 'pyflakes', 'diagnostic source pyflakes')
  check(#lint_diags() == 7, 'lint_me.py has 7 diagnostics', tostring(#lint_diags()))
  local all = vim.diagnostic.get(nil, { namespace = berth.ns })
  check(#all == 7, 'no diagnostics elsewhere', tostring(#all))

  -- :BerthTest → quickfix
  local test_path = ws .. '/tests/test_calc.py'
  vim.cmd('BerthTest')
  vim.wait(timeout, function()
    return berth.last.test ~= nil or failed('berth/test')
  end, 50)
  check(berth.last.test ~= nil, ':BerthTest answers')
  local qf = vim.fn.getqflist()
  local at_test = 0
  local statuses = {}
  for _, e in ipairs(qf) do
    if vim.api.nvim_buf_get_name(e.bufnr) == test_path then
      at_test = at_test + 1
    end
    local st = e.text:match('^(%a+) ')
    statuses[st] = (statuses[st] or 0) + 1
  end
  check(#qf == 3 and at_test == 3, 'quickfix: 3 entries at ' .. test_path, vim.inspect(qf))
  check(statuses.failed == 2 and statuses.error == 1, 'quickfix: 2 failed + 1 error', vim.inspect(statuses))
  local lnums = {}
  for _, e in ipairs(qf) do
    table.insert(lnums, e.lnum)
  end
  table.sort(lnums)
  check(vim.deep_equal(lnums, { 20, 24, 34 }), 'quickfix lines 20, 24, 34', vim.inspect(lnums))
  local qfwin = false
  for _, w in ipairs(vim.api.nvim_list_wins()) do
    if vim.fn.getwininfo(w)[1].quickfix == 1 then
      qfwin = true
    end
  end
  check(qfwin, 'quickfix window opened')

  -- :BerthTest nearest: the test under the cursor, alone (berth/test tests).
  if not berth.supports('berth/testDiscover') then
    skip(':BerthTest nearest: this berth has no berth/test `tests` yet (berth/testDiscover missing; merge the tests work)')
  else
    vim.cmd('edit ' .. vim.fn.fnameescape(test_path))
    vim.api.nvim_win_set_cursor(0, { 20, 4 }) -- in test_add_fails
    berth.last.test = nil
    vim.cmd('BerthTest nearest')
    vim.wait(timeout, function()
      return berth.last.test ~= nil or failed('berth/test')
    end, 50)
    local tr = berth.last.test or {}
    local only = tr.tests and #tr.tests == 1 and tr.tests[1] or {}
    check(berth.last.nearest and berth.last.nearest.id == 'tests/test_calc.py::test_add_fails'
      and only.id == 'tests/test_calc.py::test_add_fails' and only.status == 'failed',
      ':BerthTest nearest runs test_add_fails alone', vim.inspect({ nearest = berth.last.nearest, tests = tr.tests }))
    vim.cmd('enew')
  end

  -- :BerthTest cancel: $/cancelRequest for the berth/test request stops the runner.
  local slow = ws .. '/tests/test_slow.py'
  vim.fn.writefile({ 'import time', '', '', 'def test_slow():', '    time.sleep(120)' }, slow)
  local function running_runner()
    local _, procs = berth.request_sync('berth/processes', { workspace = ws, state = 'running' }, 10000)
    for _, p in ipairs(procs or {}) do
      if table.concat(p.argv or {}, ' '):find('pytest', 1, true) then
        return p
      end
    end
  end
  local cancelled
  berth.test({ files = { slow } }, function(cerr)
    cancelled = cerr and cerr.code or 0
  end)
  local runner
  for _ = 1, 150 do
    runner = running_runner()
    if runner then
      break
    end
    vim.wait(200)
  end
  vim.cmd('BerthTest cancel')
  local gone = false
  for _ = 1, 50 do
    if not running_runner() then
      gone = true
      break
    end
    vim.wait(200)
  end
  check(runner ~= nil and cancelled == -32800 and gone, ':BerthTest cancel stops the test run',
    vim.inspect({ runner = runner, cancelled = cancelled, gone = gone }))
  vim.fn.delete(slow)

  -- :BerthForward: a server in the container, reached from the host.
  vim.cmd('BerthRun python3 -m http.server 8765 --bind 127.0.0.1')
  local fwd_ok = false
  for _ = 1, 50 do
    berth.last.forward = nil
    vim.cmd('BerthForward 8765')
    vim.wait(timeout, function()
      return berth.last.forward ~= nil
    end, 50)
    local f = berth.last.forward
    if f and f.hostPort then
      local out = vim.fn.system({ 'curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', 'http://127.0.0.1:' .. f.hostPort .. '/' })
      if vim.trim(out) == '200' then
        fwd_ok = true
        break
      end
    end
    vim.wait(200)
  end
  check(fwd_ok, ':BerthForward reaches a server in the container')

  -- :BerthPorts: the list, with forward and close from its lines.
  local ports = require('berth.ports')
  local function http(port)
    return vim.trim(vim.fn.system({ 'curl', '-s', '-m', '5', '-o', '/dev/null', '-w', '%{http_code}', 'http://127.0.0.1:' .. port .. '/' }))
  end
  local function list_line(b, pattern)
    for i, l in ipairs(vim.api.nvim_buf_get_lines(b, 0, -1, false)) do
      if l:find(pattern) then
        return i, l
      end
    end
  end
  local function refreshed(b)
    berth.last.ports = nil
    return vim.wait(timeout, function()
      return berth.last.ports ~= nil or failed('berth/ports') or failed('berth/tunnels')
    end, 50)
  end
  if berth.supports('berth/ports') then
    -- A server that listens on all addresses is detected (berth/portsChanged)
    -- and auto-forwarded (onAutoForward's default, notify).
    vim.cmd('BerthRun python3 -m http.server 8766')
    local detected
    vim.wait(timeout, function()
      for _, p in ipairs((ports.state[ws] or {}).ports or {}) do
        if p.port == 8766 and p.tunnelId then
          detected = p
          return true
        end
      end
      return false
    end, 50)
    check(detected ~= nil, 'berth/portsChanged: port 8766 detected and auto-forwarded', vim.inspect(ports.state[ws]))
    local told = false
    for _, n in ipairs(notes) do
      if n.msg:find('port 8766', 1, true) and n.msg:find('forwarded', 1, true) then
        told = true
      end
    end
    check(told, 'the auto-forward is notified')
    local lb = berth.ports_list()
    refreshed(lb)
    local lnum, line = list_line(lb, '^8766 ')
    local row = lnum and ports.row(lb, lnum) or {}
    check(row.tunnelId ~= nil and row.hostPort ~= nil and http(row.hostPort) == '200',
      ':BerthPorts lists 8766 with its forward, which reaches the server', vim.inspect({ line = line, row = row }))
    local closed
    ports.close_row(lb, lnum, function()
      closed = true
    end)
    vim.wait(timeout, function()
      return closed
    end, 50)
    lnum, line = list_line(lb, '^8766 ')
    check(lnum and ports.row(lb, lnum).tunnelId == nil and (row.hostPort == nil or http(row.hostPort) ~= '200'),
      ':BerthPorts closes the forward (c)', line)
    local fwd
    ports.forward_row(lb, lnum, function()
      fwd = true
    end)
    vim.wait(timeout, function()
      return fwd
    end, 50)
    lnum, line = list_line(lb, '^8766 ')
    local again = lnum and ports.row(lb, lnum) or {}
    check(again.hostPort ~= nil and http(again.hostPort) == '200', ':BerthPorts forwards the port again (f)', line)
    vim.cmd('bwipeout! ' .. lb)

    -- $BROWSER in the container opens the URL on the host, its port forwarded.
    local opened = {}
    berth.config.open_url = function(url)
      table.insert(opened, url)
    end
    vim.cmd('BerthRun sh -c "$BROWSER http://localhost:8766/x?y=1"')
    vim.wait(timeout, function()
      return #opened > 0
    end, 50)
    local hp = opened[1] and tonumber(opened[1]:match('^http://localhost:(%d+)/x%?y=1$'))
    check(hp ~= nil and http(hp) ~= '000', '$BROWSER opens the URL on the host through window/showDocument', vim.inspect(opened))
    berth.config.open_url = nil
  else
    skip('berth/ports, auto-forwards: this berth has no berth/ports yet (merge the ports work); the list falls back to berth/tunnels')
    local lb = berth.ports_list()
    refreshed(lb)
    local lnum, line = list_line(lb, '^8765 ')
    local row = lnum and ports.row(lb, lnum) or {}
    check(row.tunnelId ~= nil and row.hostPort ~= nil and http(row.hostPort) == '200',
      ':BerthPorts lists the forward of 8765 (berth/tunnels)', table.concat(vim.api.nvim_buf_get_lines(lb, 0, -1, false), '\n'))
    local closed
    ports.close_row(lb, lnum, function()
      closed = true
    end)
    vim.wait(timeout, function()
      return closed
    end, 50)
    check(row.tunnelId and berth.last.closeTunnel == row.tunnelId and http(row.hostPort) ~= '200', ':BerthPorts closes a forward (c)', line)
    vim.cmd('bwipeout! ' .. lb)
  end

  -- nvim-dap: a stand-in `dap` module (nvim-dap is not installed here);
  -- the adapter really calls berth/debug, which starts debugpy.
  local dap = { adapters = {}, configurations = {} }
  package.loaded['dap'] = dap
  check(berth.setup_dap() and type(dap.adapters.berth) == 'function', 'dap adapter registered')
  local dconf = dap.configurations.python and dap.configurations.python[1]
  check(dconf and dconf.type == 'berth' and dconf.request == 'attach' and dconf.program == '${file}',
    'dap.configurations.python entry', vim.inspect(dconf))
  local config = vim.deepcopy(dconf or {})
  config.program = ws .. '/app.py' -- what nvim-dap makes of ${file}
  local adapter
  dap.adapters.berth(function(a)
    adapter = a
  end, config)
  vim.wait(timeout, function()
    return adapter ~= nil or failed('berth/debug')
  end, 50)
  local res = berth.last.debug or {}
  check(adapter and adapter.type == 'server' and adapter.host == '127.0.0.1' and type(adapter.port) == 'number'
    and adapter.port == res.port, 'dap adapter: server at the forwarded port', vim.inspect(adapter))
  local enriched
  if adapter and adapter.enrich_config then
    adapter.enrich_config(config, function(c)
      enriched = c
    end)
  end
  local pm = enriched and enriched.pathMappings and enriched.pathMappings[1] or {}
  check(enriched and enriched.type == 'berth' and enriched.request == 'attach' and enriched.connect
    and enriched.connect.port == res.port and pm.localRoot == ws and pm.remoteRoot == '/workspaces/pyproj',
    'dap attach config from berth/debug', vim.inspect(enriched))
  if adapter and adapter.port then
    -- debugpy answers a DAP initialize on the host port.
    local t = uv.new_tcp()
    local got = ''
    t:connect('127.0.0.1', adapter.port, function(e)
      if e then
        got = 'connect error ' .. e
        return
      end
      local body = vim.json.encode({ seq = 1, type = 'request', command = 'initialize', arguments = { adapterID = 'berth' } })
      t:write('Content-Length: ' .. #body .. '\r\n\r\n' .. body)
      t:read_start(function(_, data)
        if data then
          got = got .. data
        end
      end)
    end)
    vim.wait(20000, function()
      return got:find('"command": *"initialize"') ~= nil or got:find('connect error') ~= nil
    end, 50)
    t:close()
    check(got:find('"command": *"initialize"') ~= nil, 'debugpy answers DAP initialize through the tunnel', got:sub(1, 300))
  end

  -- :checkhealth berth: binary and version, daemon, agent, configuration.
  local function health()
    vim.cmd('checkhealth berth')
    local text = table.concat(vim.api.nvim_buf_get_lines(0, 0, -1, false), '\n')
    vim.cmd('tabclose')
    return text
  end
  local version = vim.trim(vim.fn.system({ berth_bin, 'version' }))
  local htext = health()
  check(htext:find('OK:? ' .. vim.pesc(version) .. ' at ' .. vim.pesc(berth_bin)) and htext:find('docker answers', 1, true)
    and htext:find('OK:? agent: build %x+ for linux/amd64') and htext:find('the configuration reads: image ' .. vim.pesc(image))
    and not htext:find('ERROR'), ':checkhealth berth: binary, daemon, agent, configuration', htext)
  local bad = tmp .. '/badconf'
  vim.fn.mkdir(bad .. '/.devcontainer', 'p')
  vim.fn.writefile({ '{"image": "x",', '  "postCreateCommand": [1' }, bad .. '/.devcontainer/devcontainer.json')
  berth.config.root = uv.fs_realpath(bad)
  htext = health()
  berth.config.root = nil
  check(htext:find('ERROR:? .*devcontainer%.json:%d+:%d+: ') ~= nil, ':checkhealth berth names the configuration error with file:line:col', htext)

  -- A second workspace on the same connection: a Go module whose
  -- .devcontainer.json names the Go image. The workspace follows the buffer.
  local gows = tmp .. '/goproj'
  vim.fn.mkdir(gows, 'p')
  gows = uv.fs_realpath(gows)
  vim.fn.writefile({ '{"image": "' .. go_image .. '"}' }, gows .. '/.devcontainer.json')
  vim.fn.writefile({ 'module example.com/hello', '', 'go 1.19' }, gows .. '/go.mod')
  vim.fn.writefile({ 'package main', '', 'import "fmt"', '', 'func add(a, b int) int {',
    '\treturn a + b // BREAKPOINT 6', '}', '', 'func main() {', '\tfmt.Println("sum", add(2, 3))', '}' }, gows .. '/main.go')
  vim.fn.writefile({ 'package main', '', 'import "testing"', '', 'func TestAdd(t *testing.T) {',
    '\tif add(2, 3) != 5 { // BREAKPOINT 6', '\t\tt.Fatal("add")', '\t}', '}', '',
    'func TestAddWrong(t *testing.T) {', '\tif add(2, 2) != 5 {', '\t\tt.Fatal("add(2, 2) is not 5")', '\t}', '}' },
    gows .. '/main_test.go')
  local first_client = berth.client
  vim.cmd('edit ' .. vim.fn.fnameescape(gows .. '/main_test.go'))
  check(berth.root() == gows, 'the workspace of a buffer is found upward (.devcontainer.json)', berth.root())
  berth.last.up = nil
  vim.cmd('BerthUp')
  vim.wait(timeout, function()
    return berth.last.up ~= nil or failed('berth/up')
  end, 50)
  local gup = berth.last.up or {}
  check(gup.workspace == gows and gup.image == go_image and berth.client == first_client and berth.workspaces[ws]
    and berth.workspaces[gows], 'a second workspace is up on the same connection', vim.inspect(gup))

  if not berth.supports('berth/testDiscover') then
    skip(':BerthTest nearest (Go): this berth has no berth/test `tests` yet')
  else
    vim.api.nvim_win_set_cursor(0, { 13, 2 }) -- in TestAddWrong
    berth.last.test, berth.last.error = nil, nil
    vim.cmd('BerthTest nearest')
    -- go test compiles first: slow on a busy machine.
    vim.wait(timeout * 2, function()
      return berth.last.test ~= nil or failed('berth/test')
    end, 50)
    local gt = berth.last.test or {}
    check(gt.tests and #gt.tests == 1 and gt.tests[1].id == 'example.com/hello.TestAddWrong' and gt.tests[1].status == 'failed',
      ':BerthTest nearest runs TestAddWrong alone', vim.inspect(gt.tests))
  end

  -- delve through the dap adapter, driven by a stand-in DAP client. dlv
  -- debug builds without optimisations: build once first, so that the
  -- debug server starts within berth's wait on a cold container.
  berth.last.run = nil
  berth.run("go build -gcflags='all=-N -l' -o /dev/null . && go test -c -gcflags='all=-N -l' -o /dev/null .", { open = false })
  vim.wait(timeout * 4, function()
    return berth.last.run ~= nil and berth.last.run.exited
  end, 50)
  check((berth.last.run or {}).code == 0, 'warm the Go build cache for delve', vim.inspect(berth.last.run))
  local D = dofile(here .. '/dap_client.lua')
  local function delve(conf, file, line)
    local adapter
    berth.last.error = nil
    dap.adapters.berth(function(a)
      adapter = a
    end, conf)
    vim.wait(timeout, function()
      return adapter ~= nil or failed('berth/debug')
    end, 50)
    if not adapter then
      return nil, 'berth/debug: ' .. vim.inspect(berth.last.error)
    end
    local enriched
    adapter.enrich_config(conf, function(c)
      enriched = c
    end)
    local c, cerr = D.connect(adapter.host, adapter.port)
    if not c then
      return nil, 'connect: ' .. tostring(cerr)
    end
    local out = { attach = enriched }
    out.init = c:request('initialize', { adapterID = 'go', pathFormat = 'path', linesStartAt1 = true, columnsStartAt1 = true })
    local aseq = c:send(enriched.request, enriched)
    c:event({ 'initialized' }, 30000)
    out.bp = c:request('setBreakpoints', { source = { path = file }, breakpoints = { { line = line } } })
    c:request('configurationDone')
    out.attached = c:response(aseq, 10000)
    out.stopped = c:event({ 'stopped', 'terminated' }, 60000)
    if out.stopped and out.stopped.event == 'stopped' then
      local st = c:request('stackTrace', { threadId = out.stopped.body.threadId, levels = 1 })
      out.top = st and st.body and st.body.stackFrames and st.body.stackFrames[1]
    end
    c:request('disconnect', { terminateDebuggee = true }, 10000)
    c:close()
    return out
  end
  local gconf = vim.deepcopy(dap.configurations.go and dap.configurations.go[1] or {})
  check(gconf.type == 'berth' and gconf.berthAdapter == 'delve' and gconf.program == '${fileDirname}',
    'dap.configurations.go: berth: delve', vim.inspect(gconf))
  gconf.program = gows -- what nvim-dap makes of ${fileDirname} in main.go
  local r, why = delve(gconf, gows .. '/main.go', 6)
  r = r or {}
  check(r.attach and r.attach.request == 'attach' and r.attach.mode == 'remote' and r.init and r.init.success,
    'delve: attach configuration from berth/debug, DAP initialize answered', why or vim.inspect({ attach = r.attach, init = r.init }))
  check(r.stopped and r.stopped.event == 'stopped' and r.top and r.top.source and r.top.source.path == gows .. '/main.go'
    and r.top.line == 6, 'delve: stopped at the breakpoint, reported at the host path', vim.inspect({ stopped = r.stopped, top = r.top }))

  if not berth.supports('berth/testDiscover') then
    skip('delve test debugging: this berth has no berth/debug `test` yet')
  else
    vim.api.nvim_win_set_cursor(0, { 6, 1 }) -- in TestAdd
    local tconf = vim.deepcopy(dap.configurations.go[2])
    local p = berth.debug_params(tconf)
    check(p and p.test == true and vim.deep_equal(p.tests, { 'example.com/hello.TestAdd' }) and p.adapter == 'delve',
      'delve test: berth/debug params for the test under the cursor', vim.inspect(p))
    local tr, twhy = delve(tconf, gows .. '/main_test.go', 6)
    tr = tr or {}
    check(tr.stopped and tr.stopped.event == 'stopped' and tr.top and tr.top.source
      and tr.top.source.path == gows .. '/main_test.go' and tr.top.line == 6,
      'delve test: dlv test stops at the breakpoint in TestAdd', twhy or vim.inspect({ stopped = tr.stopped, top = tr.top }))
  end

  berth.last.down = nil
  berth.down(true) -- the current buffer's workspace: the Go module
  vim.wait(timeout, function()
    return berth.last.down ~= nil or failed('berth/down')
  end, 50)
  check(berth.last.down and berth.last.down.remove and berth.last.down.workspace == gows, 'berth.down(true) removes the Go workspace container',
    vim.inspect(berth.last.down))
  vim.cmd('enew')

  -- :BerthStatus
  berth.last.status = nil
  vim.cmd('BerthStatus')
  vim.wait(timeout, function()
    return berth.last.status ~= nil
  end, 50)
  check(type(berth.last.status) == 'table' and berth.last.status.state == 'running', ':BerthStatus reports running')

  -- :BerthShell: a terminal buffer running the login shell in the container.
  local shell_code
  local received = {}
  local job, sbuf = berth.shell({
    insert = false,
    on_exit = function(code)
      shell_code = code
    end,
    on_stdout = function(data)
      vim.list_extend(received, data)
    end,
  })
  check(job ~= nil and job > 0, ':BerthShell starts a terminal job')
  if job then
    vim.defer_fn(function()
      vim.fn.chansend(job, 'echo shell-$((6*7)); exit 3\n')
    end, 3000)
    local text = ''
    vim.wait(timeout, function()
      -- What the terminal received: headless, its buffer may not be drawn.
      text = table.concat(received, '\n')
      return shell_code ~= nil and text:find('shell-42', 1, true) ~= nil
    end, 50)
    check(shell_code == 3 and text:find('shell-42', 1, true) ~= nil, ':BerthShell runs a shell in the container',
      vim.inspect({ code = shell_code, text = text }))
    vim.cmd('bwipeout! ' .. sbuf)
  end

  -- berth.lsp_cmd: pylsp in the container through berth lsp, with
  -- vim.lsp.start_client (Neovim 0.7). Definition of add in app.py lands
  -- in calc.py on the host.
  local cmd = berth.lsp_cmd({ 'pylsp' })
  check(vim.deep_equal(cmd, { berth_bin, '--backend', 'docker', '--image', image, 'lsp', '--', 'pylsp' }),
    'lsp_cmd builds the berth lsp command line', vim.inspect(cmd))
  local lsp_id = vim.lsp.start_client({ name = 'berth-pylsp', cmd = cmd, root_dir = ws })
  check(lsp_id ~= nil, 'vim.lsp.start_client on lsp_cmd')
  vim.cmd('edit ' .. vim.fn.fnameescape(ws .. '/app.py'))
  local abuf = vim.api.nvim_get_current_buf()
  vim.lsp.buf_attach_client(abuf, lsp_id)
  local def
  vim.wait(timeout, function()
    local c = vim.lsp.get_client_by_id(lsp_id)
    if not c or not c.initialized then
      return false
    end
    local res = c.request_sync('textDocument/definition', {
      textDocument = { uri = vim.uri_from_fname(ws .. '/app.py') },
      position = { line = 5, character = 13 },
    }, 10000, abuf)
    def = res and res.result
    return def ~= nil and def[1] ~= nil
  end, 500)
  local loc = def and def[1] or {}
  check(loc.uri == vim.uri_from_fname(ws .. '/calc.py'), 'definition through berth lsp is a host URI', vim.inspect(def))
  vim.lsp.stop_client(lsp_id)
  vim.wait(10000, function()
    return vim.lsp.get_client_by_id(lsp_id) == nil
  end, 100)
  vim.cmd('bwipeout! ' .. abuf)

  -- :BerthDown rm, from a buffer of no file: the workspace of the current directory.
  vim.cmd('enew')
  berth.last.down = nil
  vim.cmd('BerthDown rm')
  check(vim.wait(timeout, function()
    return berth.last.down ~= nil
  end, 50) and berth.last.down.remove and berth.last.down.workspace == ws, ':BerthDown rm answers',
    vim.inspect(berth.last.down))
  berth.last.status = nil
  vim.cmd('BerthStatus')
  vim.wait(timeout, function()
    return berth.last.status ~= nil
  end, 50)
  check(berth.last.status == vim.NIL, 'no container after :BerthDown rm', vim.inspect(berth.last.status))

  berth.stop()
  check(berth.client == nil, 'berth stopped')

  -- Workspace trust: a configuration with a lifecycle command makes berth
  -- ask with window/showMessageRequest, answered here through vim.ui.select.
  local tws = tmp .. '/hooked'
  vim.fn.mkdir(tws, 'p')
  tws = uv.fs_realpath(tws)
  vim.fn.writefile({ '{"image": "' .. image .. '", "postCreateCommand": "touch ${containerWorkspaceFolder}/hook-ran"}' },
    tws .. '/.devcontainer.json')
  local asked, answer = {}, "Don't trust"
  local ui_select = vim.ui.select
  vim.ui.select = function(items, opts, on_choice)
    table.insert(asked, { items = items, prompt = opts.prompt })
    on_choice(answer)
  end
  berth.setup({ cmd = { berth_bin, '--stdio' }, backend = 'docker', image = image, root = tws })
  berth.last = {}
  vim.cmd('BerthUp')
  vim.wait(timeout, function()
    return berth.last.up ~= nil or failed('berth/up')
  end, 50)
  local e = berth.last.error and berth.last.error.error or {}
  check(e.code == -32029 and #asked == 1 and vim.tbl_contains(asked[1].items or {}, 'Trust')
    and (asked[1].prompt or ''):find(tws, 1, true) ~= nil,
    'declining trust fails :BerthUp with -32029', vim.inspect({ error = e, asked = asked }))
  check(vim.fn.filereadable(tws .. '/hook-ran') == 0, 'the untrusted hook did not run')
  berth.stop()
  answer = 'Trust'
  berth.last = {}
  vim.cmd('BerthUp')
  vim.wait(timeout, function()
    return berth.last.up ~= nil or failed('berth/up')
  end, 50)
  check(berth.last.up ~= nil and #asked == 2 and vim.fn.filereadable(tws .. '/hook-ran') == 1,
    'trusting runs the hook', vim.inspect({ last = berth.last, asked = #asked }))
  berth.last = {}
  vim.cmd('BerthDown rm')
  vim.wait(timeout, function()
    return berth.last.down ~= nil or failed('berth/down')
  end, 50)
  berth.stop()
  vim.ui.select = ui_select
  berth.setup({ cmd = { berth_bin, '--stdio' }, backend = 'docker', image = image, root = ws })

  -- The same attached to a running berth, through `berth connect`: over
  -- TCP (port 0: berth picks one and prints `berth: listening on ADDR`;
  -- berth connect finds the token file) and over a unix socket.
  for _, listen in ipairs({ { '--tcp', '127.0.0.1:0' }, { '--listen', 'unix:' .. tmp .. '/berth.sock' } }) do
    local addr
    local job = vim.fn.jobstart({ berth_bin, listen[1], listen[2], '--backend', 'docker' }, {
      on_stderr = function(_, data)
        for _, line in ipairs(data) do
          local a = line:match('listening on (%S+)')
          if a then
            addr = a
          end
        end
      end,
    })
    local up = vim.wait(20000, function()
      return addr ~= nil
    end, 20)
    check(up, 'berth ' .. listen[1] .. ' listening on ' .. tostring(addr))
    berth.setup({ cmd = { berth_bin, '--stdio' }, connect = addr, image = image })
    berth.last = {}
    vim.cmd('BerthStatus')
    vim.wait(timeout, function()
      return berth.last.status ~= nil or failed('berth/status')
    end, 50)
    check(berth.last.status == vim.NIL and berth.server and berth.server.capabilities.berth.defaultWorkspace == ws,
      ':BerthStatus over ' .. listen[1], vim.inspect(berth.last))
    berth.stop()
    vim.fn.jobstop(job)
  end
end)
if not ok then
  fail('error: ' .. tostring(err))
  pcall(function()
    require('berth').down({ remove = true })
    vim.wait(20000, function()
      return require('berth').last.down ~= nil
    end, 50)
  end)
end
vim.fn.delete(tmp, 'rf')
finish()
