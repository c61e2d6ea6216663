-- berth.nvim: run your work in the workspace's container through the berth
-- sidecar (`berth --stdio`). See :help berth.
--
-- Written for Neovim 0.7 APIs (vim.loop, vim.fn, vim.diagnostic,
-- nvim_create_user_command, vim.lsp.rpc) and compatible with newer
-- releases. One berth connection serves every workspace: each request
-- names the workspace of the current buffer (berth.workspace).
local rpc = require('berth.rpc')
local progress = require('berth.progress')
local workspace = require('berth.workspace')

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
  root = nil, -- one fixed workspace (default: found per buffer, :help berth-workspaces)
  open_output = true, -- :BerthRun opens the output buffer in a split
  log_level = vim.log.levels.INFO, -- lowest level of berth's messages shown with vim.notify
  progress = 'echo', -- how progress shows: 'echo', 'notify', false or function(task)
  log_file = nil, -- berth's own log (default: stdpath('cache')/berth.log; false: Neovim's LSP log)
  open_url = nil, -- function(url) that opens a URL on the host (default: vim.ui.open, $BERTH_OPENER, xdg-open, open)
}

M.config = vim.deepcopy(M.defaults)
M.client = nil
M.server = nil -- initialize's result
M.procs = {} -- pid -> {pid, buf, kind, cmd, workspace, exited, code, signal, reason}
M.tunnels = {} -- tunnelId -> {containerPort, host, hostPort, workspace}
M.workspaces = {} -- workspaces this connection used -> true
M.messages = {} -- berth's log messages, the last 500: {level, text}
M.last = {} -- last result per command: up, run, test, lint, forward, down, status, debug, ports, error
M.ns = api.nvim_create_namespace('berth')

local levels = vim.log.levels

local function log(msg, level)
  table.insert(M.messages, { level = level, text = msg })
  if #M.messages > 500 then
    table.remove(M.messages, 1)
  end
end

local function notify(msg, level)
  level = level or levels.INFO
  log(msg, level)
  if level < (M.config.log_level or levels.INFO) then
    return
  end
  vim.notify('berth: ' .. msg, level, { title = 'berth' })
end
M.notify = notify

--- The workspace of buffer buf (default: the current one): the `root`
--- setting, else found upward from the buffer's file (:help berth-workspaces).
function M.root(buf)
  if M.config.root and M.config.root ~= '' then
    return M.config.root
  end
  return workspace.for_buf(buf or 0)
end

-- params with the workspace: opts.workspace, else the current buffer's.
local function with_ws(params, opts)
  params = params or {}
  local ws = (opts and opts.workspace) or M.root()
  params.workspace = ws
  M.workspaces[ws] = true
  return params
end

-- Hints for berth's stable error codes (docs/protocol.md, Errors).
local hints = {
  [-32010] = 'is the container daemon running? (:checkhealth berth)',
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

local function proc(pid, ws)
  local p = M.procs[pid]
  if not p then
    p = { pid = pid, workspace = ws }
    M.procs[pid] = p
  end
  p.workspace = p.workspace or ws
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
  if p.workspace then
    api.nvim_buf_set_var(p.buf, 'berth_workspace', p.workspace)
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
-- Notifications and requests from berth
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

-- window/showMessage levels; window/logMessage's Info and Log are the steps
-- of long operations, which progress shows: they are DEBUG here.
local message_levels = { [1] = levels.ERROR, [2] = levels.WARN, [3] = levels.INFO, [4] = levels.DEBUG }
local log_levels = { [1] = levels.ERROR, [2] = levels.WARN, [3] = levels.DEBUG, [4] = levels.DEBUG }

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
  notify(msg, log_levels[params.type] or levels.DEBUG)
end

handlers['window/showMessage'] = function(params)
  local msg = (params.message or ''):gsub('^berth: ', '')
  notify(msg, message_levels[params.type] or levels.INFO)
end

handlers['$/progress'] = function(params)
  progress.handle(params, M.config.progress)
end

handlers['berth/configChanged'] = function(params)
  local files = params.files or {}
  local which = #files > 0 and (' (' .. table.concat(files, ', ') .. ')') or ''
  M.last.configChanged = params
  notify('configuration changed' .. which .. ': :BerthUp recreate to rebuild', levels.WARN)
end

handlers['berth/portsChanged'] = function(params)
  require('berth.ports').changed(params)
end

M.handlers = handlers

-- Requests berth sends. window/showMessageRequest asks whether to trust a
-- workspace's configuration; dismissing the choice answers null, which
-- berth takes as "don't trust". window/showDocument opens a URL that a
-- program in the container gave $BROWSER.
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

request_handlers['window/showDocument'] = function(params, reply)
  local uri = params.uri or ''
  if not params.external and uri:match('^file:') then
    vim.cmd('edit ' .. vim.fn.fnameescape(vim.uri_to_fname(uri)))
    reply({ success = true })
    return
  end
  if not (uri:match('^https?://')) then
    reply({ success = false })
    return
  end
  reply({ success = M.open_url(uri) })
end

M.request_handlers = request_handlers

--- Open a URL on the host: config.open_url, else vim.ui.open (0.10+), else
--- $BERTH_OPENER, xdg-open or open. Returns whether an opener started.
function M.open_url(url)
  M.last.opened = url
  if M.config.open_url then
    return M.config.open_url(url) ~= false
  end
  if vim.ui.open and not os.getenv('BERTH_OPENER') then
    local ok = pcall(vim.ui.open, url)
    return ok
  end
  local opener = os.getenv('BERTH_OPENER')
  if not opener or opener == '' then
    opener = vim.fn.executable('xdg-open') == 1 and 'xdg-open' or 'open'
  end
  local job = vim.fn.jobstart({ opener, url }, { detach = true })
  if job <= 0 then
    notify('cannot open ' .. url .. ' with ' .. opener .. ' (set $BERTH_OPENER)', levels.WARN)
    return false
  end
  return true
end

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

--- berth's log file: config.log_file, else stdpath('cache')/berth.log;
--- nil when berth logs to stderr (Neovim's LSP log) or cmd names one.
function M.log_file()
  if M.config.log_file == false or vim.tbl_contains(M.config.cmd, '--log-file') then
    return nil
  end
  return M.config.log_file or (vim.fn.stdpath('cache') .. '/berth.log')
end

local function tail(path, n)
  local ok, lines = pcall(vim.fn.readfile, path, '', -n)
  if not ok then
    return ''
  end
  return table.concat(lines, '\n')
end

--- Start berth (or connect) and initialize it; returns the client.
function M.start()
  if M.client and M.client:is_running() then
    return M.client
  end
  local root = M.root()
  local client
  local cmd = vim.deepcopy(M.config.cmd)
  local attach = M.config.connect or M.config.tcp
  if attach then
    -- vim.lsp.rpc can't dial a unix socket on 0.7, nor read berth's token
    -- file: berth connect does both and speaks stdio.
    cmd = { M.config.cmd[1], 'connect', attach }
  end
  local logf = M.log_file()
  if logf and not attach then
    vim.fn.mkdir(vim.fn.fnamemodify(logf, ':h'), 'p')
    table.insert(cmd, 2, '--log-file')
    table.insert(cmd, 3, logf)
  end
  local ok, started = pcall(rpc.start, {
    cmd = cmd,
    cwd = uv.fs_stat(root) and root or nil,
    on_notification = function(method, params)
      local h = handlers[method]
      if h then
        local hok, herr = pcall(h, params or {})
        if not hok then
          notify('handler for ' .. method .. ': ' .. tostring(herr), levels.WARN)
        end
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
    on_exit = function(code)
      if client and client.stopping then
        return
      end
      if M.client == client then
        M.client, M.server = nil, nil
      end
      local last = (logf and not attach) and tail(logf, 5) or ''
      local how = attach and ('connection to berth ended (code ' .. tostring(code) .. ')')
        or ('berth exited (code ' .. tostring(code) .. ')')
      notify(how .. (last ~= '' and (':\n' .. last) or ''), levels.WARN)
    end,
  })
  if not ok then
    local msg = tostring(started)
    if msg:find('ENOENT') or msg:find('executable') or vim.fn.executable(cmd[1]) == 0 then
      msg = msg .. '\n  hint: set `cmd` in require("berth").setup() to the berth binary (:checkhealth berth)'
    end
    notify(msg, levels.ERROR)
    return nil
  end
  client = started
  M.client = client
  M.workspaces = {}
  client:request('initialize', {
    processId = vim.fn.getpid(),
    clientInfo = { name = 'neovim', version = tostring(vim.version().major) .. '.' .. tostring(vim.version().minor) },
    rootUri = vim.uri_from_fname(root),
    initializationOptions = init_options(),
    capabilities = { window = { showMessage = vim.empty_dict(), showDocument = { support = true }, workDoneProgress = true } },
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

--- Whether the running berth handles method (false before it answered
--- initialize).
function M.supports(method)
  local caps = M.server and M.server.capabilities and M.server.capabilities.berth or {}
  return vim.tbl_contains(caps.methods or {}, method)
end

--- Send a request; cb(err, result). Errors are reported (and kept in
--- berth.last.error) unless cb returns true for them or the request was
--- cancelled.
function M.request(method, params, cb)
  local c = M.start()
  if not c then
    if cb then
      cb({ code = -32099, message = 'berth is not running' }, nil)
    end
    return nil
  end
  return c:request(method, params, function(err, res)
    local handled = cb and cb(err, res)
    -- A cancelled request (-32800) is what the user asked for.
    if err and not handled and err.code ~= -32800 then
      M.last.error = { method = method, error = err }
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

-- with_progress adds a fresh workDoneToken to params.
local function with_progress(params, kind)
  if M.config.progress then
    params.workDoneToken = progress.token(kind)
  end
  return params
end

---------------------------------------------------------------------------
-- Commands
---------------------------------------------------------------------------

-- opts(x, key): a table of options from x, where a boolean stands for
-- {key = x} (berth.down(true) is berth.down({remove = true})).
local function options(x, key)
  if type(x) == 'boolean' then
    return { [key] = x }
  end
  return x or {}
end

--- berth/up. opts: recreate, workspace (or a boolean: recreate).
function M.up(opts, cb)
  opts = options(opts, 'recreate')
  local params = with_progress(with_ws({}, opts), 'up')
  if opts.recreate then
    params.recreate = true
  end
  return M.request('berth/up', params, function(err, res)
    if not err then
      M.last.up = res
      local how = res.created and 'created' or 'running'
      notify(string.format('%s %s (%s, %s) at %s', res.name or '?', how, res.image or '?', res.backend or '?', res.workdir or '?'))
      if res.stale then
        notify('its configuration changed since it was created: :BerthUp recreate to rebuild', levels.WARN)
      end
      -- berth/ports starts berth's port watch for this connection, so
      -- that berth/portsChanged and $BROWSER reach it.
      if M.supports('berth/ports') then
        require('berth.ports').refresh(params.workspace)
      end
    end
    if cb then
      return cb(err, res)
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

--- berth/exec, streaming into berth://pN. opts: open (default
--- config.open_output), workspace.
function M.run(cmdline, opts, cb)
  opts = opts or {}
  local argv = M.argv(cmdline)
  if #argv == 0 or argv[1] == '' then
    notify('BerthRun: give a command', levels.ERROR)
    return
  end
  local label = type(cmdline) == 'table' and table.concat(cmdline, ' ') or vim.trim(cmdline)
  local params = with_progress(with_ws({ argv = argv, kind = 'run' }, opts), 'exec')
  return M.request('berth/exec', params, function(err, res)
    if not err then
      local p = proc(res.pid, params.workspace)
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
      return cb(err, res)
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

--- berth/test → quickfix. opts: framework, args, files, tests (ids: run
--- exactly these), workspace.
function M.test(opts, cb)
  opts = opts or {}
  local params = with_progress(with_ws({}, opts), 'test')
  for _, k in ipairs({ 'framework', 'args', 'files', 'tests' }) do
    if opts[k] ~= nil and not (type(opts[k]) == 'table' and #opts[k] == 0) then
      params[k] = opts[k]
    end
  end
  local id
  id = M.request('berth/test', params, function(err, res)
    if M.running_test and M.running_test.id == id then
      M.running_test = nil
    end
    if err and err.code == -32800 then
      notify('test run cancelled', levels.INFO)
    elseif not err then
      M.last.test = res
      local items = M.test_qf_items(res)
      vim.fn.setqflist({}, ' ', { title = 'berth test (' .. (res.framework or '?') .. ')', items = items })
      local s = res.summary or {}
      local msg = string.format('%s: %d passed, %d failed, %d skipped, %d errors (exit %s, output in berth://%s)',
        res.framework or '?', s.passed or 0, s.failed or 0, s.skipped or 0, s.errors or 0, tostring(res.code), res.pid or '?')
      if #items > 0 then
        -- Open the list, and stay where you were.
        local win = api.nvim_get_current_win()
        vim.cmd('botright copen')
        if api.nvim_win_is_valid(win) then
          api.nvim_set_current_win(win)
        end
        notify(msg, levels.WARN)
      else
        notify(msg)
      end
    end
    if cb then
      return cb(err, res)
    end
  end)
  if id then
    M.running_test = { id = id, client = M.client }
  end
  return id
end

--- Run the test under the cursor (berth/test with tests = {id}); opts as
--- for berth.test. Returns the request id, or nil with the reason.
function M.test_nearest(opts, cb)
  opts = opts or {}
  local ws = opts.workspace or M.root()
  local t, why = require('berth.tests').nearest(0, ws)
  if not t then
    notify('BerthTest nearest: ' .. tostring(why), levels.ERROR)
    return nil, why
  end
  M.last.nearest = t
  return M.test(vim.tbl_extend('force', opts, { workspace = ws, framework = t.framework, tests = { t.id } }), cb)
end

--- Run the tests of the current file.
function M.test_file(opts, cb)
  opts = opts or {}
  local file = api.nvim_buf_get_name(0)
  if file == '' then
    notify('BerthTest file: the buffer has no file', levels.ERROR)
    return nil
  end
  return M.test(vim.tbl_extend('force', opts, { files = { vim.fn.fnamemodify(file, ':p') } }), cb)
end

--- Cancel the running berth/test ($/cancelRequest kills the runner).
function M.test_cancel()
  local r = M.running_test
  if not r or not r.client or not r.client:is_running() then
    notify('no test run to cancel', levels.INFO)
    return false
  end
  M.running_test = nil
  r.client:cancel(r.id)
  return true
end

--- berth/lint; diagnostics arrive as textDocument/publishDiagnostics.
--- opts: linter, command, format, files, workspace.
function M.lint(opts, cb)
  opts = opts or {}
  local params = with_progress(with_ws({}, opts), 'lint')
  for _, k in ipairs({ 'linter', 'command', 'format', 'files' }) do
    if opts[k] ~= nil and not (type(opts[k]) == 'table' and #opts[k] == 0) then
      params[k] = opts[k]
    end
  end
  return M.request('berth/lint', params, function(err, res)
    if not err then
      M.last.lint = res
      notify(string.format('%s: %d diagnostics in %d files (%d errors, %d warnings)%s',
        res.linter or '?', res.diagnostics or 0, res.files or 0, res.errors or 0, res.warnings or 0,
        (res.unmapped or 0) > 0 and (', ' .. res.unmapped .. ' outside the workspace') or ''))
    end
    if cb then
      return cb(err, res)
    end
  end)
end

--- berth/forward {containerPort}. opts: hostPort, workspace (opts may be
--- left out: berth.forward(port, cb)).
function M.forward(port, opts, cb)
  if type(opts) == 'function' then
    opts, cb = nil, opts
  end
  opts = opts or {}
  port = tonumber(port)
  if not port then
    notify('BerthForward: give a container port', levels.ERROR)
    return
  end
  local params = with_ws({ containerPort = port }, opts)
  if opts.hostPort then
    params.hostPort = opts.hostPort
  end
  return M.request('berth/forward', params, function(err, res)
    if not err then
      M.last.forward = res
      M.tunnels[res.tunnelId] = { containerPort = port, host = res.host, hostPort = res.hostPort, workspace = params.workspace }
      notify(string.format('container port %d is at %s:%d (tunnel %s)', port, res.host or '127.0.0.1', res.hostPort, res.tunnelId or '?'))
    end
    if cb then
      return cb(err, res)
    end
  end)
end

--- berth/closeTunnel.
function M.close_tunnel(id, cb)
  return M.request('berth/closeTunnel', { tunnelId = id }, function(err, res)
    if not err then
      M.tunnels[id] = nil
      M.last.closeTunnel = id
      notify('tunnel ' .. id .. ' closed')
    end
    if cb then
      return cb(err, res)
    end
  end)
end

--- berth/ports of the workspace: cb(err, {ports, forwards}). opts.workspace.
function M.ports(opts, cb)
  opts = opts or {}
  local ws = opts.workspace or M.root()
  M.workspaces[ws] = true
  return require('berth.ports').refresh(ws, function(err, st)
    if not err then
      M.last.ports = st
    end
    if cb then
      return cb(err, st)
    end
  end)
end

--- :BerthPorts: the list of the workspace's ports; returns its buffer.
function M.ports_list(opts, cb)
  opts = opts or {}
  local ws = opts.workspace or M.root()
  M.workspaces[ws] = true
  return require('berth.ports').open(ws, function(err, st)
    if not err then
      M.last.ports = st
    end
    if cb then
      return cb(err, st)
    end
  end)
end

--- berth/down. opts: remove, workspace (or a boolean: remove).
function M.down(opts, cb)
  opts = options(opts, 'remove')
  local params = with_ws({}, opts)
  if opts.remove then
    params.remove = true
  end
  return M.request('berth/down', params, function(err, res)
    if not err then
      M.last.down = { remove = opts.remove and true or false, workspace = params.workspace }
      notify(opts.remove and 'container removed' or 'container stopped')
    end
    if cb then
      return cb(err, res)
    end
  end)
end

--- berth/status: the instance, pretty-printed. opts.workspace (opts may be
--- left out: berth.status(cb)).
function M.status(opts, cb)
  if type(opts) == 'function' then
    opts, cb = nil, opts
  end
  return M.request('berth/status', with_ws({}, opts), function(err, res)
    if not err then
      M.last.status = res or vim.NIL
      if res == nil then
        notify('no container for this workspace (:BerthUp creates it)')
      else
        notify('status\n' .. pretty(res))
      end
    end
    if cb then
      return cb(err, res)
    end
  end)
end

--- :BerthLog: berth's messages, also those below log_level, in a buffer.
function M.show_log()
  local b = find_buf('berth://log') or api.nvim_create_buf(false, true)
  if api.nvim_buf_get_name(b) == '' then
    api.nvim_buf_set_name(b, 'berth://log')
    api.nvim_buf_set_option(b, 'buftype', 'nofile')
  end
  local names = { [levels.DEBUG] = 'DEBUG', [levels.INFO] = 'INFO', [levels.WARN] = 'WARN', [levels.ERROR] = 'ERROR' }
  local lines = {}
  for _, m in ipairs(M.messages) do
    for i, l in ipairs(vim.split(m.text, '\n', { plain = true })) do
      table.insert(lines, (i == 1 and string.format('%-5s ', names[m.level] or '?') or '      ') .. l)
    end
  end
  api.nvim_buf_set_lines(b, 0, -1, false, lines)
  vim.cmd('botright split')
  api.nvim_win_set_buf(0, b)
  return b
end

---------------------------------------------------------------------------
-- nvim-dap (berth.dap)
---------------------------------------------------------------------------
function M.debug_params(config)
  return require('berth.dap').params(config)
end

function M.attach_config(config, attach)
  return require('berth.dap').merge(config, attach)
end

function M.setup_dap()
  return require('berth.dap').setup()
end

--- The global flags of the berth CLI for this configuration: argv
--- through the workspace, backend, image, config and trust.
function M.cli_argv(opts)
  opts = opts or {}
  local argv = { M.config.cmd[1] }
  local ws = opts.workspace
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
  return argv
end

-- M.shell opens the remote user's login shell in a terminal buffer: `berth
-- shell` gets a real terminal from Neovim, with its size and resizes.
-- It runs its own short-lived berth, so it works with or without a
-- running sidecar; opts.on_exit(code) is called when the shell ends, and
-- opts.on_stdout(lines) with what the terminal receives.
function M.shell(opts)
  opts = opts or {}
  local ws = opts.workspace or M.root()
  local argv = M.cli_argv({ workspace = ws })
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
        notify('berth shell exited with code ' .. code, levels.INFO)
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
  api.nvim_buf_set_var(buf, 'berth_workspace', ws)
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
  local argv = M.cli_argv(vim.tbl_extend('force', opts, { workspace = opts.workspace or M.config.root }))
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

--- Define the :Berth* commands (plugin/berth.lua does, before setup()).
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
    if a.args == 'nearest' then
      M.test_nearest()
    elseif a.args == 'file' then
      M.test_file()
    elseif a.args == 'cancel' then
      M.test_cancel()
    else
      M.test({ args = a.fargs })
    end
  end, {
    nargs = '*',
    complete = function()
      return { 'nearest', 'file', 'cancel' }
    end,
    desc = 'berth: run the tests (all, nearest, file) into the quickfix list',
  })
  command('BerthDebugTest', function()
    require('berth.dap').debug_test()
  end, { nargs = 0, desc = 'berth: debug the test under the cursor with nvim-dap' })
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
  command('BerthPorts', function()
    M.ports_list()
  end, { nargs = 0, desc = "berth: the container's ports and forwards" })
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
  command('BerthLog', function()
    M.show_log()
  end, { nargs = 0, desc = "berth: berth's messages" })
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
