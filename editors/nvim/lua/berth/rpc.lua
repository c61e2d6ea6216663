-- berth.rpc: a client of `berth --stdio` (or `berth connect ADDR`) on
-- Neovim's own JSON-RPC transport, vim.lsp.rpc, which does the LSP framing.
--
-- vim.lsp.rpc.start changed its signature in 0.10 (the argv became one
-- list); both are handled here. Everything else it offers since 0.7 is
-- enough for berth, so there is no fallback transport.
local M = {}

local Client = {}
Client.__index = Client

-- denil turns vim.NIL into nil recursively: 0.7 decodes null inside arrays
-- as vim.NIL even with luanil.
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

local function spawn(cmd, dispatchers, cwd)
  local extra = { cwd = cwd }
  if vim.fn.has('nvim-0.10') == 1 then
    return vim.lsp.rpc.start(cmd, dispatchers, extra)
  end
  return vim.lsp.rpc.start(cmd[1], vim.list_slice(cmd, 2), dispatchers, extra)
end

--- Start a client.
--- opts.cmd: argv (e.g. {'berth','--stdio'} or {'berth','connect','unix:/run/user/1000/berth.sock'}),
--- opts.cwd, opts.on_notification(method, params), opts.on_exit(code, signal),
--- opts.on_error(msg), opts.on_request(method, params, reply) where
--- reply(result, err) answers the server's request (result nil is null).
--- All callbacks run on the main loop. Errors if the command can't start.
function M.start(opts)
  local self = setmetatable({ closed = false, opts = opts, pending = {} }, Client)
  local dispatchers = {
    notification = function(method, params)
      if opts.on_notification then
        opts.on_notification(method, denil(params))
      end
    end,
    server_request = function(method, params)
      return self:_server_request(method, denil(params))
    end,
    on_error = function(code, err)
      if opts.on_error then
        local name = vim.lsp.rpc.client_errors and vim.lsp.rpc.client_errors[code] or tostring(code)
        opts.on_error(tostring(name) .. ': ' .. vim.inspect(err))
      end
    end,
    -- Not scheduled by vim.lsp.rpc (0.7): it runs in the loop's callback.
    on_exit = vim.schedule_wrap(function(code, signal)
      self:_exited(code, signal)
    end),
  }
  self.rpc = spawn(opts.cmd, dispatchers, opts.cwd)
  return self
end

-- _server_request answers window/showMessageRequest and the like.
-- vim.lsp.rpc wants the answer returned, but a handler such as
-- vim.ui.select may answer later: wait for it, handling events meanwhile.
function Client:_server_request(method, params)
  local done, result, err = false, nil, nil
  local function reply(r, e)
    if not done then
      done, result, err = true, r, e
    end
  end
  if not self.opts.on_request then
    return nil, vim.lsp.rpc.rpc_response_error(-32601, 'method not found: ' .. method)
  end
  local ok, e = pcall(self.opts.on_request, method, params, reply)
  if not ok then
    return nil, vim.lsp.rpc.rpc_response_error(-32603, tostring(e))
  end
  vim.wait(10 * 60 * 1000, function()
    return done or self.closed
  end, 20)
  if err then
    return nil, vim.lsp.rpc.rpc_response_error(err.code or -32603, err.message)
  end
  if result == nil then
    return vim.NIL
  end
  return result
end

--- Send a request; cb(err, result) runs on the main loop. Returns the id,
--- or nil when berth is gone (cb then gets an error).
function Client:request(method, params, cb)
  cb = cb or function() end
  if self.closed then
    vim.schedule(function()
      cb({ code = -32099, message = 'berth is not running' }, nil)
    end)
    return nil
  end
  local id
  local ok, sent_id = self.rpc.request(method, params or vim.empty_dict(), function(err, res)
    self.pending[id] = nil
    cb(err and denil(err) or nil, denil(res))
  end)
  if not ok then
    vim.schedule(function()
      cb({ code = -32099, message = 'berth is not running' }, nil)
    end)
    return nil
  end
  id = sent_id
  self.pending[id] = cb
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
  if self.closed then
    return false
  end
  return self.rpc.notify(method, params or vim.empty_dict())
end

--- Cancel a request. vim.lsp.rpc drops the -32800 answer, so the request's
--- callback is called here with that error instead.
function Client:cancel(id)
  local cb = id and self.pending[id]
  self:notify('$/cancelRequest', { id = id })
  if cb then
    self.pending[id] = nil
    cb({ code = -32800, message = 'request cancelled' }, nil)
  end
end

function Client:_exited(code, signal)
  if self.closed then
    return
  end
  self.closed = true
  local pending = self.pending
  self.pending = {}
  for _, cb in pairs(pending) do
    pcall(cb, { code = -32099, message = 'berth exited (code ' .. tostring(code) .. ')' }, nil)
  end
  if self.opts.on_exit then
    self.opts.on_exit(code, signal)
  end
end

function Client:_kill()
  if self.rpc.terminate then
    self.rpc.terminate()
  elseif self.rpc.handle and not self.rpc.handle:is_closing() then
    self.rpc.handle:kill('sigterm')
  end
end

--- Graceful stop: shutdown, then exit; berth exits on `exit`. Kills it if
--- it doesn't within timeout_ms.
function Client:stop(timeout_ms)
  if self.closed then
    return
  end
  self:request_sync('shutdown', nil, timeout_ms or 2000)
  self:notify('exit')
  vim.wait(timeout_ms or 2000, function()
    return self.closed
  end, 10)
  if not self.closed then
    self:_kill()
    vim.wait(1000, function()
      return self.closed
    end, 10)
  end
end

function Client:is_running()
  return not self.closed
end

return M
