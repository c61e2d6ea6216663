-- berth.nvim: run your work in the workspace's container through the berth
-- sidecar (`berth --stdio`). See :help berth.
--
-- Written for Neovim 0.7 APIs (vim.loop, vim.fn, vim.diagnostic,
-- nvim_create_user_command) and compatible with newer releases.
local rpc = require('berth.rpc')

local api = vim.api
local uv = vim.uv or vim.loop

local M = {}

M.defaults = {
  cmd = { 'berth', '--stdio' }, -- how to spawn berth
  connect = nil, -- attach to a running berth instead: 'unix:PATH' or 'host:port', through `berth connect`
  tcp = nil, -- older name for connect
  backend = nil, -- initializationOptions.backend: 'docker' or 'incus'
  image = nil, -- initializationOptions.image
  config = nil, -- initializationOptions.config: devcontainer.json or Containerfile
  trust = nil, -- initializationOptions.trust: true trusts every workspace's hooks and host mounts without asking
  root = nil, -- workspace (default: the current directory when berth starts)
  open_output = true, -- :BerthRun opens the output buffer in a split
  log_level = vim.log.levels.INFO, -- lowest level of berth's own messages shown
}

M.config = vim.deepcopy(M.defaults)
M.client = nil
M.server = nil -- initialize's result
M.procs = {} -- pid -> {pid, buf, kind, cmd, exited, code, signal, reason}
M.tunnels = {}
M.last = {} -- last result per command: up, run, test, lint, forward, down, status, debug
M.ns = api.nvim_create_namespace('berth')

local levels = vim.log.levels

local function notify(msg, level)
  level = level or levels.INFO
  if level < (M.config.log_level or levels.INFO) then
    return
  end
  vim.notify('berth: ' .. msg, level, { title = 'berth' })
end
M.notify = notify

-- Hints for berth's stable error codes (docs/protocol.md, Errors).
local hints = {
  [-32010] = 'is the container daemon running? (:help berth-troubleshooting)',
  [-32011] = 'set `image` in setup(), BERTH_IMAGE or --image, or build the image (:help berth-troubleshooting)',
  [-32021] = 'this needs the berth agent, which this container runs without; :BerthStatus says why',
}

local function error_text(method, err)
  local msg = (err and err.message) or tostring(err)
  local text = msg
  if not msg:find(method, 1, true) then
    text = method .. ': ' .. msg
  end
  local hint = err and hints[err.code]
  if hint then
    text = text .. '\n  hint: ' .. hint
  end
  return text
end

local function report_error(method, err)
  notify(error_text(method, err), levels.ERROR)
end

---------------------------------------------------------------------------
-- JSON pretty printer (for :BerthStatus): sorted keys, two-space indent.
---------------------------------------------------------------------------
local function is_array(t)
  if getmetatable(t) == getmetatable(vim.empty_dict()) and next(t) == nil then
    return false
  end
  local n = 0
  for k in pairs(t) do
    if type(k) ~= 'number' then
      return false
    end
    n = n + 1
  end
  return n > 0 and n == #t
end

-- json_string quotes a string without escaping '/' (vim.json does).
local function json_string(s)
  s = s:gsub('[%c"\\]', function(c)
    local named = { ['"'] = '\\"', ['\\'] = '\\\\', ['\n'] = '\\n', ['\r'] = '\\r', ['\t'] = '\\t' }
    return named[c] or string.format('\\u%04x', c:byte())
  end)
  return '"' .. s .. '"'
end

local function pretty(v, indent)
  indent = indent or ''
  if v == nil or v == vim.NIL then
    return 'null'
  end
  if type(v) == 'string' then
    return json_string(v)
  end
  if type(v) ~= 'table' then
    return vim.json.encode(v)
  end
  local inner = indent .. '  '
  if is_array(v) then
    local parts = {}
    for _, x in ipairs(v) do
      table.insert(parts, inner .. pretty(x, inner))
    end
    return '[\n' .. table.concat(parts, ',\n') .. '\n' .. indent .. ']'
  end
  local keys = vim.tbl_keys(v)
  if #keys == 0 then
    return '{}'
  end
  table.sort(keys, function(a, b)
    return tostring(a) < tostring(b)
  end)
  local parts = {}
  for _, k in ipairs(keys) do
    table.insert(parts, inner .. json_string(tostring(k)) .. ': ' .. pretty(v[k], inner))
  end
  return '{\n' .. table.concat(parts, ',\n') .. '\n' .. indent .. '}'
end
M.pretty = pretty

---------------------------------------------------------------------------
-- Process output buffers: berth://pN
---------------------------------------------------------------------------
local function find_buf(name)
  for _, b in ipairs(api.nvim_list_bufs()) do
    if api.nvim_buf_is_valid(b) and api.nvim_buf_get_name(b) == name then
      return b
    end
  end
end

local function proc(pid)
  local p = M.procs[pid]
  if not p then
    p = { pid = pid }
    M.procs[pid] = p
  end
  if not p.buf or not api.nvim_buf_is_valid(p.buf) then
    local name = 'berth://' .. pid
    -- A previous berth session may have used the same pid: reuse and clear.
    local b = find_buf(name)
    if not b then
      b = api.nvim_create_buf(false, true)
      api.nvim_buf_set_name(b, name)
    end
    api.nvim_buf_set_option(b, 'buftype', 'nofile')
    api.nvim_buf_set_option(b, 'bufhidden', 'hide')
    api.nvim_buf_set_option(b, 'swapfile', false)
    api.nvim_buf_set_option(b, 'modifiable', true)
    api.nvim_buf_set_lines(b, 0, -1, false, {})
    api.nvim_buf_set_var(b, 'berth_pid', pid)
    p.buf = b
  end
  return p
end
M.proc = proc

local function follow(buf)
  local n = api.nvim_buf_line_count(buf)
  for _, w in ipairs(api.nvim_list_wins()) do
    if api.nvim_win_get_buf(w) == buf then
      pcall(api.nvim_win_set_cursor, w, { n, 0 })
    end
  end
end

local function append(buf, text)
  text = text:gsub('\r\n', '\n'):gsub('\r', '\n')
  local lines = vim.split(text, '\n', { plain = true })
  local last = api.nvim_buf_get_lines(buf, -2, -1, false)[1] or ''
  lines[1] = last .. lines[1]
  api.nvim_buf_set_lines(buf, -2, -1, false, lines)
  follow(buf)
end

-- append_line puts a whole line at the end, after any partial output line.
local function append_line(buf, line)
  local last = api.nvim_buf_get_lines(buf, -2, -1, false)[1] or ''
  if last == '' then
    api.nvim_buf_set_lines(buf, -2, -1, false, { line, '' })
  else
    api.nvim_buf_set_lines(buf, -1, -1, false, { line, '' })
  end
  follow(buf)
end

local function exit_text(p)
  local s = 'exit ' .. tostring(p.code)
  if p.signal then
    s = s .. ' (' .. p.signal .. ')'
  end
  if p.reason then
    s = s .. ': ' .. p.reason
  end
  return s
end

local function announce_exit(p)
  if p.announced then
    return
  end
  p.announced = true
  local what = p.cmd and (' (' .. p.cmd .. ')') or ''
  notify(p.pid .. what .. ': ' .. exit_text(p), p.code == 0 and levels.INFO or levels.WARN)
end

---------------------------------------------------------------------------
-- Notifications from berth
---------------------------------------------------------------------------
local lsp_severity = {
  [1] = vim.diagnostic.severity.ERROR,
  [2] = vim.diagnostic.severity.WARN,
  [3] = vim.diagnostic.severity.INFO,
  [4] = vim.diagnostic.severity.HINT,
}

local function publish_diagnostics(params)
  local fname = vim.uri_to_fname(params.uri)
  local bufnr = vim.fn.bufadd(fname)
  local out = {}
  for _, d in ipairs(params.diagnostics or {}) do
    local s = (d.range and d.range.start) or { line = 0, character = 0 }
    local e = (d.range and d.range['end']) or s
    table.insert(out, {
      lnum = s.line,
      col = s.character,
      end_lnum = e.line,
      end_col = e.character,
      severity = lsp_severity[d.severity] or vim.diagnostic.severity.ERROR,
      message = d.message,
      source = d.source,
      code = d.code,
    })
  end
  vim.diagnostic.set(M.ns, bufnr, out)
end

local log_levels = { [1] = levels.ERROR, [2] = levels.WARN, [3] = levels.INFO, [4] = levels.DEBUG }

local handlers = {}

handlers['berth/output'] = function(params)
  local p = proc(params.pid)
  append(p.buf, params.text or '')
end

handlers['berth/exit'] = function(params)
  local p = proc(params.pid)
  p.exited, p.code, p.signal, p.reason = true, params.code, params.signal, params.reason
  append_line(p.buf, '[' .. exit_text(p) .. ']')
  if p.kind == 'run' then
    announce_exit(p)
  end
  for id, t in pairs(M.tunnels) do
    if t.pid == params.pid then
      M.tunnels[id] = nil
    end
  end
end

handlers['textDocument/publishDiagnostics'] = publish_diagnostics

handlers['window/logMessage'] = function(params)
  local msg = (params.message or ''):gsub('^berth: ', '')
  notify(msg, log_levels[params.type] or levels.INFO)
end

handlers['window/showMessage'] = handlers['window/logMessage']

handlers['$/progress'] = function(params)
  local v = params.value or {}
  local parts = {}
  for _, k in ipairs({ 'title', 'message' }) do
    if v[k] then
      table.insert(parts, v[k])
    end
  end
  if v.percentage then
    table.insert(parts, v.percentage .. '%')
  end
  if #parts > 0 then
    notify(table.concat(parts, ' '), levels.DEBUG)
  end
end

handlers['berth/configChanged'] = function(params)
  local files = params.files or {}
  local which = #files > 0 and (' (' .. table.concat(files, ', ') .. ')') or ''
  M.last.configChanged = params
  notify('configuration changed' .. which .. ': :BerthUp recreate to rebuild', levels.WARN)
end

M.handlers = handlers

-- Requests berth sends: window/showMessageRequest, which asks whether to
-- trust a workspace's configuration. Dismissing the choice answers null,
-- which berth takes as "don't trust".
local request_handlers = {}

request_handlers['window/showMessageRequest'] = function(params, reply)
  local titles = {}
  for _, a in ipairs(params.actions or {}) do
    table.insert(titles, a.title)
  end
  vim.ui.select(titles, { prompt = params.message or 'berth' }, function(choice)
    reply(choice and { title = choice } or nil)
  end)
end

M.request_handlers = request_handlers

---------------------------------------------------------------------------
-- The client
---------------------------------------------------------------------------
local function init_options()
  local o = {}
  for _, k in ipairs({ 'backend', 'image', 'config', 'trust' }) do
    if M.config[k] ~= nil and M.config[k] ~= '' then
      o[k] = M.config[k]
    end
  end
  if next(o) == nil then
    return vim.empty_dict()
  end
  return o
end

--- Start berth (or connect) and initialize it; returns the client.
function M.start()
  if M.client and M.client:is_running() then
    return M.client
  end
  local root = M.config.root or uv.cwd()
  local client
  local cmd = M.config.cmd
  local attach = M.config.connect or M.config.tcp
  if attach then
    -- Neovim can't dial a unix socket with vim.lsp.rpc, nor read berth's
    -- token file: berth connect does both and speaks stdio.
    cmd = { M.config.cmd[1], 'connect', attach }
  end
  local ok, started = pcall(rpc.start, {
    cmd = cmd,
    cwd = root,
    on_notification = function(method, params)
      local h = handlers[method]
      if h then
        h(params or {})
      end
    end,
    on_request = function(method, params, reply)
      local h = request_handlers[method]
      if not h then
        reply(nil, { code = -32601, message = 'method not found: ' .. method })
        return
      end
      h(params or {}, reply)
    end,
    on_error = function(msg)
      notify(msg, levels.WARN)
    end,
    on_exit = function(code, signal, tail)
      if client and client.stopping then
        return
      end
      if M.client == client then
        M.client, M.server = nil, nil
      end
      local lines = vim.split(vim.trim(tail or ''), '\n', { plain = true })
      local last = table.concat(vim.list_slice(lines, math.max(1, #lines - 4)), '\n')
      local how = attach and 'connection to berth ended (code ' .. tostring(code) .. ')' or ('berth exited (code ' .. tostring(code) .. ')')
      notify(how .. (last ~= '' and (':\n' .. last) or ''), levels.WARN)
    end,
  })
  if not ok then
    local msg = tostring(started)
    if msg:find('ENOENT') then
      msg = msg .. '\n  hint: set `cmd` in require("berth").setup() to the berth binary (:help berth-setup)'
    end
    notify(msg, levels.ERROR)
    return nil
  end
  client = started
  M.client = client
  client:request('initialize', {
    processId = vim.fn.getpid(),
    clientInfo = { name = 'neovim', version = tostring(vim.version().major) .. '.' .. tostring(vim.version().minor) },
    rootUri = vim.uri_from_fname(root),
    initializationOptions = init_options(),
    capabilities = { window = { showMessage = vim.empty_dict() } },
  }, function(err, res)
    if err then
      report_error('initialize', err)
      M.stop()
      return
    end
    M.server = res
  end)
  client:notify('initialized', vim.empty_dict())
  return client
end

--- Stop berth: shutdown, exit. Containers keep running.
function M.stop()
  local c = M.client
  if not c then
    return
  end
  c.stopping = true
  M.client, M.server = nil, nil
  c:stop(2000)
end

--- Send a request; cb(err, result). Errors are reported unless cb returns true
--- for them (cb is called either way).
function M.request(method, params, cb)
  local c = M.start()
  if not c then
    if cb then
      cb({ code = -32099, message = 'berth is not running' }, nil)
    end
    return nil
  end
  return c:request(method, params, function(err, res)
    if err then
      M.last.error = { method = method, error = err }
    end
    local handled = cb and cb(err, res)
    if err and not handled then
      report_error(method, err)
    end
  end)
end

--- Send a request and wait (for scripts): returns err, result.
function M.request_sync(method, params, timeout_ms)
  local c = M.start()
  if not c then
    return { code = -32099, message = 'berth is not running' }, nil
  end
  return c:request_sync(method, params, timeout_ms)
end

---------------------------------------------------------------------------
-- Commands
---------------------------------------------------------------------------

--- berth/up; opts.recreate.
function M.up(opts, cb)
  opts = opts or {}
  local params = vim.empty_dict()
  if opts.recreate then
    params = { recreate = true }
  end
  notify(opts.recreate and 'recreating the container…' or 'bringing the container up…', levels.DEBUG)
  return M.request('berth/up', params, function(err, res)
    if not err then
      M.last.up = res
      local how = res.created and 'created' or 'running'
      notify(string.format('%s %s (%s, %s) at %s', res.name or '?', how, res.image or '?', res.backend or '?', res.workdir or '?'))
      if res.stale then
        notify('its configuration changed since it was created: :BerthUp recreate to rebuild', levels.WARN)
      end
    end
    if cb then
      cb(err, res)
    end
  end)
end

local shell_meta = '[|&;<>()$`\\"\'*?%[%]#~=%%{}\n]'

--- Turn a command line into argv: plain words are split on whitespace,
--- anything with shell syntax runs under `sh -c`.
function M.argv(cmdline)
  if type(cmdline) == 'table' then
    return cmdline
  end
  cmdline = vim.trim(cmdline or '')
  if cmdline:find(shell_meta) then
    return { 'sh', '-c', cmdline }
  end
  return vim.split(cmdline, '%s+')
end

--- berth/exec, streaming into berth://pN. opts.open (default config.open_output).
function M.run(cmdline, opts, cb)
  opts = opts or {}
  local argv = M.argv(cmdline)
  if #argv == 0 or argv[1] == '' then
    notify('BerthRun: give a command', levels.ERROR)
    return
  end
  local label = type(cmdline) == 'table' and table.concat(cmdline, ' ') or vim.trim(cmdline)
  return M.request('berth/exec', { argv = argv, kind = 'run' }, function(err, res)
    if not err then
      local p = proc(res.pid)
      p.kind, p.cmd = 'run', label
      api.nvim_buf_set_lines(p.buf, 0, 0, false, { '$ ' .. label })
      M.last.run = p
      local open = opts.open
      if open == nil then
        open = M.config.open_output
      end
      if open then
        local cur = api.nvim_get_current_win()
        vim.cmd('botright split')
        api.nvim_win_set_buf(0, p.buf)
        follow(p.buf)
        if opts.keep_focus ~= false then
          api.nvim_set_current_win(cur)
        end
      end
      if p.exited then
        announce_exit(p)
      end
    end
    if cb then
      cb(err, res)
    end
  end)
end

local function one_line(s)
  s = (s or ''):gsub('\r', ''):gsub('\n+', ' | ')
  return s
end

--- Quickfix items for the failed and errored tests of a berth/test result.
function M.test_qf_items(res)
  local items = {}
  for _, t in ipairs(res.tests or {}) do
    if t.status == 'failed' or t.status == 'error' then
      local text = t.status .. ' ' .. (t.name or t.id or '?')
      if t.message and t.message ~= '' then
        text = text .. ': ' .. one_line(t.message)
      end
      local item = { text = text, type = 'E' }
      if t.location and t.location.uri then
        item.filename = vim.uri_to_fname(t.location.uri)
        item.lnum = t.location.line
      end
      table.insert(items, item)
    end
  end
  return items
end

--- berth/test → quickfix. opts: framework, args, files.
function M.test(opts, cb)
  opts = opts or {}
  local params = {}
  for _, k in ipairs({ 'framework', 'args', 'files' }) do
    if opts[k] ~= nil and not (type(opts[k]) == 'table' and #opts[k] == 0) then
      params[k] = opts[k]
    end
  end
  if next(params) == nil then
    params = vim.empty_dict()
  end
  notify('running tests…', levels.DEBUG)
  return M.request('berth/test', params, function(err, res)
    if not err then
      M.last.test = res
      local items = M.test_qf_items(res)
      vim.fn.setqflist({}, ' ', { title = 'berth test (' .. (res.framework or '?') .. ')', items = items })
      local s = res.summary or {}
      local msg = string.format('%s: %d passed, %d failed, %d skipped, %d errors (exit %s, output in berth://%s)',
        res.framework or '?', s.passed or 0, s.failed or 0, s.skipped or 0, s.errors or 0, tostring(res.code), res.pid or '?')
      if #items > 0 then
        vim.cmd('botright copen')
        notify(msg, levels.WARN)
      else
        notify(msg)
      end
    end
    if cb then
      cb(err, res)
    end
  end)
end

--- berth/lint; diagnostics arrive as textDocument/publishDiagnostics.
--- opts: linter, command, format, files.
function M.lint(opts, cb)
  opts = opts or {}
  local params = {}
  for _, k in ipairs({ 'linter', 'command', 'format', 'files' }) do
    if opts[k] ~= nil and not (type(opts[k]) == 'table' and #opts[k] == 0) then
      params[k] = opts[k]
    end
  end
  if next(params) == nil then
    params = vim.empty_dict()
  end
  return M.request('berth/lint', params, function(err, res)
    if not err then
      M.last.lint = res
      notify(string.format('%s: %d diagnostics in %d files (%d errors, %d warnings)%s',
        res.linter or '?', res.diagnostics or 0, res.files or 0, res.errors or 0, res.warnings or 0,
        (res.unmapped or 0) > 0 and (', ' .. res.unmapped .. ' outside the workspace') or ''))
    end
    if cb then
      cb(err, res)
    end
  end)
end

--- berth/forward {containerPort}.
function M.forward(port, cb)
  port = tonumber(port)
  if not port then
    notify('BerthForward: give a container port', levels.ERROR)
    return
  end
  return M.request('berth/forward', { containerPort = port }, function(err, res)
    if not err then
      M.last.forward = res
      M.tunnels[res.tunnelId] = { containerPort = port, host = res.host, hostPort = res.hostPort }
      notify(string.format('container port %d is at %s:%d (tunnel %s)', port, res.host or '127.0.0.1', res.hostPort, res.tunnelId or '?'))
    end
    if cb then
      cb(err, res)
    end
  end)
end

--- berth/down; opts.remove.
function M.down(opts, cb)
  opts = opts or {}
  local params = vim.empty_dict()
  if opts.remove then
    params = { remove = true }
  end
  return M.request('berth/down', params, function(err, res)
    if not err then
      M.last.down = { remove = opts.remove and true or false }
      notify(opts.remove and 'container removed' or 'container stopped')
    end
    if cb then
      cb(err, res)
    end
  end)
end

--- berth/status: the instance, pretty-printed.
function M.status(cb)
  return M.request('berth/status', vim.empty_dict(), function(err, res)
    if not err then
      M.last.status = res or vim.NIL
      if res == nil then
        notify('no container for this workspace (:BerthUp creates it)')
      else
        notify('status\n' .. pretty(res))
      end
    end
    if cb then
      cb(err, res)
    end
  end)
end

---------------------------------------------------------------------------
-- nvim-dap
---------------------------------------------------------------------------
local dap_keys = { 'program', 'module', 'args', 'cwd', 'env', 'stopOnEntry', 'justMyCode', 'command', 'port' }

--- Parameters of berth/debug for a dap configuration.
function M.debug_params(config)
  local params = { adapter = config.berthAdapter or 'debugpy' }
  for _, k in ipairs(dap_keys) do
    local v = config[k]
    if v ~= nil and not (type(v) == 'table' and next(v) == nil) then
      params[k] = v
    end
  end
  return params
end

--- Merge berth/debug's attach configuration into a dap configuration,
--- keeping its type, request and name.
function M.attach_config(config, attach)
  local out = vim.deepcopy(config)
  for k, v in pairs(attach or {}) do
    if k ~= 'type' and k ~= 'name' and k ~= 'request' then
      out[k] = v
    end
  end
  out.request = 'attach'
  return out
end

function M.setup_dap()
  local ok, dap = pcall(require, 'dap')
  if not ok then
    return false
  end
  dap.adapters.berth = function(callback, config)
    M.request('berth/debug', M.debug_params(config), function(err, res)
      if err then
        return
      end
      M.last.debug = res
      local attach = res.attach or {}
      -- Older nvim-dap ignores enrich_config for function adapters: update
      -- the configuration in place as well.
      for k, v in pairs(M.attach_config(config, attach)) do
        config[k] = v
      end
      callback({
        type = 'server',
        host = res.host,
        port = res.port,
        enrich_config = function(c, on_config)
          on_config(M.attach_config(c, attach))
        end,
      })
    end)
  end
  dap.configurations.python = dap.configurations.python or {}
  local present = false
  for _, c in ipairs(dap.configurations.python) do
    if c.type == 'berth' then
      present = true
    end
  end
  if not present then
    table.insert(dap.configurations.python, {
      type = 'berth',
      request = 'attach',
      name = 'berth: debugpy',
      program = '${file}',
    })
  end
  return true
end

-- M.shell opens the remote user's login shell in a terminal buffer: `berth
-- shell` gets a real terminal from Neovim, with its size and resizes.
-- It runs its own short-lived berth, so it works with or without a
-- running sidecar; opts.on_exit(code) is called when the shell ends, and
-- opts.on_stdout(lines) with what the terminal receives.
function M.shell(opts)
  opts = opts or {}
  local argv = { M.config.cmd[1], '--workspace', M.config.root or uv.cwd() }
  for _, k in ipairs({ 'backend', 'image', 'config' }) do
    if M.config[k] ~= nil and M.config[k] ~= '' then
      vim.list_extend(argv, { '--' .. k, M.config[k] })
    end
  end
  if M.config.trust then
    table.insert(argv, '--trust')
  end
  table.insert(argv, 'shell')
  vim.cmd('botright split')
  vim.cmd('enew')
  local buf = api.nvim_get_current_buf()
  local job = vim.fn.termopen(argv, {
    on_stdout = opts.on_stdout and function(_, data)
      opts.on_stdout(data)
    end or nil,
    on_exit = function(_, code)
      if code ~= 0 and code ~= 130 then
        notify("berth shell exited with code " .. code, levels.INFO)
      end
      if opts.on_exit then
        opts.on_exit(code)
      end
    end,
  })
  if job <= 0 then
    notify('BerthShell: cannot start ' .. table.concat(argv, ' '), levels.ERROR)
    return nil
  end
  api.nvim_buf_set_name(buf, 'berth://shell/' .. job)
  if opts.insert ~= false then
    vim.cmd('startinsert')
  end
  return job, buf
end

-- M.lsp_cmd returns the `cmd` that runs a language server in the
-- workspace's container through `berth lsp`, for vim.lsp.start,
-- vim.lsp.start_client or lspconfig: berth rewrites every URI between host
-- and container. server is the server's argv in the container, e.g.
-- {'pylsp'}. Without opts.workspace (or the root setting), berth finds the
-- workspace from the client's root_dir.
function M.lsp_cmd(server, opts)
  opts = opts or {}
  if type(server) == 'string' then
    server = { server }
  end
  assert(type(server) == 'table' and #server > 0, "berth.lsp_cmd: give the server's command, e.g. {'pylsp'}")
  local argv = { M.config.cmd[1] }
  local ws = opts.workspace or M.config.root
  if ws then
    vim.list_extend(argv, { '--workspace', ws })
  end
  for _, k in ipairs({ 'backend', 'image', 'config' }) do
    local v = opts[k] or M.config[k]
    if v ~= nil and v ~= '' then
      vim.list_extend(argv, { '--' .. k, v })
    end
  end
  if opts.trust or M.config.trust then
    table.insert(argv, '--trust')
  end
  vim.list_extend(argv, { 'lsp', '--' })
  vim.list_extend(argv, server)
  return argv
end

---------------------------------------------------------------------------
-- Setup
---------------------------------------------------------------------------
local function command(name, fn, opts)
  opts = opts or {}
  opts.force = true
  api.nvim_create_user_command(name, fn, opts)
end

function M.create_commands()
  command('BerthUp', function(a)
    if a.args ~= '' and a.args ~= 'recreate' then
      notify('BerthUp: unknown argument ' .. a.args .. ' (only "recreate")', levels.ERROR)
      return
    end
    M.up({ recreate = a.args == 'recreate' })
  end, {
    nargs = '?',
    complete = function()
      return { 'recreate' }
    end,
    desc = 'berth: start or attach to the workspace container',
  })
  command('BerthRun', function(a)
    M.run(a.args)
  end, { nargs = '+', complete = 'shellcmd', desc = 'berth: run a command in the container' })
  command('BerthTest', function(a)
    M.test({ args = a.fargs })
  end, { nargs = '*', desc = 'berth: run the tests into the quickfix list' })
  command('BerthLint', function(a)
    M.lint({ linter = a.args ~= '' and a.args or nil })
  end, {
    nargs = '?',
    complete = function()
      return { 'pyflakes', 'go vet' }
    end,
    desc = 'berth: lint the workspace into diagnostics',
  })
  command('BerthForward', function(a)
    M.forward(a.args)
  end, { nargs = 1, desc = 'berth: forward a container port to the host' })
  command('BerthDown', function(a)
    if a.args ~= '' and a.args ~= 'rm' then
      notify('BerthDown: unknown argument ' .. a.args .. ' (only "rm")', levels.ERROR)
      return
    end
    M.down({ remove = a.args == 'rm' })
  end, {
    nargs = '?',
    complete = function()
      return { 'rm' }
    end,
    desc = 'berth: stop (or remove with rm) the workspace container',
  })
  command('BerthShell', function()
    M.shell()
  end, { nargs = 0, desc = "berth: the remote user's login shell in a terminal buffer" })
  command('BerthStatus', function()
    M.status()
  end, { nargs = 0, desc = 'berth: show the workspace container' })
  command('BerthStop', function()
    M.stop()
  end, { nargs = 0, desc = 'berth: stop the berth sidecar (containers keep running)' })
end

function M.setup(opts)
  M.config = vim.tbl_deep_extend('force', vim.deepcopy(M.defaults), opts or {})
  if type(M.config.cmd) == 'string' then
    M.config.cmd = { M.config.cmd, '--stdio' }
  end
  M.create_commands()
  M.setup_dap()
  local group = api.nvim_create_augroup('berth', { clear = true })
  api.nvim_create_autocmd('VimLeavePre', {
    group = group,
    callback = function()
      M.stop()
    end,
  })
  return M
end

return M
