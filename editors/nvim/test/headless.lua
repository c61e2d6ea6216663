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
local function finish()
  io.stdout:flush()
  -- The plain closing line CI reads: "N passed, N failed".
  io.stdout:write(string.format('nvim: %d passed, %d failed\n', passes, failures))
  if failures > 0 then
    io.stdout:flush()
    vim.cmd('cquit 1')
  else
    io.stdout:flush()
    vim.cmd('qall!')
  end
end

local repo = os.getenv('BERTH_REPO') or uv.cwd()
local berth_bin = os.getenv('BERTH') or (repo .. '/bin/berth')
local image = os.getenv('BERTH_TEST_DEBIAN_IMAGE') or 'berth-test/debian:2'
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
vim.cmd('cd ' .. vim.fn.fnameescape(ws))

-- failed(method): berth answered that method with an error (stop waiting).
local function failed(method)
  local e = require('berth').last.error
  return e ~= nil and e.method == method
end

local ok, err = pcall(function()
  local berth = require('berth')
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

  -- :BerthDown rm
  vim.cmd('BerthDown rm')
  check(vim.wait(timeout, function()
    return berth.last.down ~= nil
  end, 50) and berth.last.down.remove, ':BerthDown rm answers')
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
