-- berth.rpc: JSON-RPC 2.0 over LSP base-protocol framing (Content-Length),
-- on the pipes of a spawned `berth --stdio`, or of `berth connect ADDR` to
-- attach to a running berth (which handles its socket and token).
--
-- Works on Neovim 0.7+: it uses vim.loop (vim.uv on 0.10+) for raw byte
-- streams, so frames are read byte-exactly whatever the output contains.
local uv = vim.uv or vim.loop

local M = {}

local Client = {}
Client.__index = Client

-- decode turns vim.NIL into nil recursively (0.7 has no luanil option).
local function denil(v)
  if v == vim.NIL then
    return nil
  end
  if type(v) == 'table' then
    for k, x in pairs(v) do
      v[k] = denil(x)
    end
  end
  return v
end
M.denil = denil

local function encode(msg)
  local body = vim.json.encode(msg)
  return 'Content-Length: ' .. #body .. '\r\n\r\n' .. body
end
M.encode = encode

-- Parser: feed() bytes, returns a list of decoded message bodies.
local Parser = {}
Parser.__index = Parser

function M.parser()
  return setmetatable({ buf = '' }, Parser)
end

function Parser:feed(data)
  self.buf = self.buf .. data
  local out = {}
  while true do
    -- Headers end at the first blank line (\r\n\r\n or \n\n).
    local hs, he = self.buf:find('\r?\n\r?\n')
    if not hs then
      break
    end
    local header = self.buf:sub(1, hs - 1)
    local len
    for line in (header .. '\n'):gmatch('([^\n]*)\n') do
      local name, value = line:match('^%s*([^:]+):%s*(.-)%s*\r?$')
      if name and name:lower() == 'content-length' then
        len = tonumber(value)
      end
    end
    if not len then
      -- Not a header block we understand (e.g. leading blank lines): drop it.
      self.buf = self.buf:sub(he + 1)
    else
      if #self.buf < he + len then
        break
      end
      local body = self.buf:sub(he + 1, he + len)
      self.buf = self.buf:sub(he + len + 1)
      local ok, msg = pcall(vim.json.decode, body)
      if ok and type(msg) == 'table' then
        table.insert(out, msg)
      else
        table.insert(out, { _parse_error = body })
      end
    end
  end
  return out
end

--- Start a client.
--- opts.cmd: argv to spawn (e.g. {'berth','--stdio'} or
--- {'berth','connect','unix:/run/user/1000/berth.sock'}),
--- opts.on_notification(method, params), opts.on_exit(code, signal, stderr_tail),
--- opts.on_error(msg), opts.on_request(method, params, reply) where
--- reply(result, err) answers the server's request (result nil is null).
function M.start(opts)
  local self = setmetatable({
    next_id = 1,
    pending = {}, -- id -> callback(err, result)
    parser = M.parser(),
    closed = false,
    stderr = '',
    opts = opts,
  }, Client)

  local function on_read(err, data)
    if err then
      self:_fail('read error: ' .. tostring(err))
      return
    end
    if data == nil then
      if self.stdout and not self.stdout:is_closing() then
        self.stdout:close()
      end
      return
    end
    local msgs = self.parser:feed(data)
    if #msgs > 0 then
      vim.schedule(function()
        for _, m in ipairs(msgs) do
          self:_dispatch(m)
        end
      end)
    end
  end

  local stdin, stdout, stderr = uv.new_pipe(false), uv.new_pipe(false), uv.new_pipe(false)
  local cmd = opts.cmd
  local handle, pid_or_err
  handle, pid_or_err = uv.spawn(cmd[1], {
    args = vim.list_slice(cmd, 2),
    stdio = { stdin, stdout, stderr },
    cwd = opts.cwd,
  }, function(code, signal)
    vim.schedule(function()
      self:_exited(code, signal)
    end)
    if handle and not handle:is_closing() then
      handle:close()
    end
  end)
  if not handle then
    for _, p in ipairs({ stdin, stdout, stderr }) do
      p:close()
    end
    error('berth: cannot start ' .. table.concat(cmd, ' ') .. ': ' .. tostring(pid_or_err))
  end
  self.handle, self.pid = handle, pid_or_err
  self.stream, self.stdout, self.stderr_pipe = stdin, stdout, stderr
  stdout:read_start(on_read)
  stderr:read_start(function(_, data)
    if not data then
      if not stderr:is_closing() then
        stderr:close()
      end
    else
      -- Keep the tail of berth's log for error messages.
      self.stderr = (self.stderr .. data):sub(-4000)
      if opts.on_stderr then
        vim.schedule(function()
          opts.on_stderr(data)
        end)
      end
    end
  end)
  return self
end

function Client:_write(msg)
  if self.closed then
    return false
  end
  self.stream:write(encode(msg))
  return true
end

function Client:_dispatch(m)
  if m._parse_error then
    if self.opts.on_error then
      self.opts.on_error('unparsable frame: ' .. m._parse_error:sub(1, 200))
    end
    return
  end
  if m.method then
    if m.id == nil and self.opts.on_notification then
      local ok, err = pcall(self.opts.on_notification, m.method, denil(m.params))
      if not ok and self.opts.on_error then
        self.opts.on_error('handler for ' .. m.method .. ': ' .. tostring(err))
      end
    end
    if m.id ~= nil then
      self:_request(m)
    end
    return
  end
  local id = m.id
  if id == nil or id == vim.NIL then
    if self.opts.on_error and m.error then
      self.opts.on_error('error: ' .. tostring(m.error.message))
    end
    return
  end
  local cb = self.pending[id]
  self.pending[id] = nil
  if cb then
    local err = m.error
    if err == vim.NIL then
      err = nil
    end
    local ok, e = pcall(cb, err and denil(err) or nil, denil(m.result))
    if not ok and self.opts.on_error then
      self.opts.on_error('callback: ' .. tostring(e))
    end
  end
end

--- Answer one of the server's requests (window/showMessageRequest).
function Client:_request(m)
  local id, answered = m.id, false
  local function reply(result, err)
    if answered then
      return
    end
    answered = true
    if err then
      self:_write({ jsonrpc = '2.0', id = id, error = err })
    else
      self:_write({ jsonrpc = '2.0', id = id, result = result == nil and vim.NIL or result })
    end
  end
  if not self.opts.on_request then
    reply(nil, { code = -32601, message = 'method not found: ' .. m.method })
    return
  end
  local ok, err = pcall(self.opts.on_request, m.method, denil(m.params), reply)
  if not ok then
    reply(nil, { code = -32603, message = tostring(err) })
  end
end

--- Send a request; cb(err, result) runs on the main loop. Returns the id.
function Client:request(method, params, cb)
  local id = self.next_id
  self.next_id = id + 1
  if self.closed then
    if cb then
      vim.schedule(function()
        cb({ code = -32099, message = 'berth is not running' }, nil)
      end)
    end
    return nil
  end
  self.pending[id] = cb or function() end
  self:_write({ jsonrpc = '2.0', id = id, method = method, params = params or vim.empty_dict() })
  return id
end

--- Send a request and wait for its answer (at most timeout_ms).
--- Returns err, result.
function Client:request_sync(method, params, timeout_ms)
  local done, e, r = false, nil, nil
  self:request(method, params, function(err, res)
    done, e, r = true, err, res
  end)
  if not vim.wait(timeout_ms or 10000, function()
    return done
  end, 10) then
    return { code = -32800, message = method .. ': timed out' }, nil
  end
  return e, r
end

function Client:notify(method, params)
  return self:_write({ jsonrpc = '2.0', method = method, params = params or vim.empty_dict() })
end

function Client:cancel(id)
  self:notify('$/cancelRequest', { id = id })
end

function Client:_fail_pending(msg)
  local pending = self.pending
  self.pending = {}
  for _, cb in pairs(pending) do
    pcall(cb, { code = -32099, message = msg }, nil)
  end
end

function Client:_fail(msg)
  -- The process's exit callback reports the end; a read error only waits
  -- for it.
  if self.opts.on_error then
    vim.schedule(function()
      self.opts.on_error(msg)
    end)
  end
end

function Client:_exited(code, signal)
  if self.closed then
    return
  end
  self.closed = true
  -- stdout and stderr close themselves at EOF, after their last bytes.
  if self.stream and not self.stream:is_closing() then
    self.stream:close()
  end
  local tail = self.stderr
  self:_fail_pending('berth exited (code ' .. tostring(code) .. ')')
  if self.opts.on_exit then
    self.opts.on_exit(code, signal, tail)
  end
end

function Client:_close_handles()
  for _, h in ipairs({ self.stream, self.stdout, self.stderr_pipe }) do
    if h and not h:is_closing() then
      pcall(function()
        h:read_stop()
      end)
      h:close()
    end
  end
end

--- Graceful stop: shutdown, then exit, then close the pipe.
function Client:stop(timeout_ms)
  if self.closed then
    return
  end
  self:request_sync('shutdown', nil, timeout_ms or 2000)
  self:notify('exit')
  -- berth (or berth connect, when berth hangs up) exits on `exit` and on
  -- stdin EOF; wait briefly for it.
  vim.wait(timeout_ms or 2000, function()
    return self.closed
  end, 10)
  if not self.closed then
    self.closed = true
    self:_close_handles()
    if self.handle and not self.handle:is_closing() then
      self.handle:kill('sigterm')
    end
  end
end

function Client:is_running()
  return not self.closed
end

return M
