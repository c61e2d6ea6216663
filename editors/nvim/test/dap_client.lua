-- A stand-in DAP client for the headless tests: nvim-dap needs a newer
-- Neovim than Debian's, so the tests speak DAP themselves over the host
-- end of berth/debug's tunnel. Synchronous: every call waits with vim.wait.
local uv = vim.uv or vim.loop

local M = {}
local Client = {}
Client.__index = Client

--- Connect to host:port; returns a client or nil, err.
function M.connect(host, port, timeout_ms)
  local self = setmetatable({ seq = 0, buf = '', responses = {}, events = {}, closed = false }, Client)
  local tcp = uv.new_tcp()
  self.tcp = tcp
  local done, cerr = false, nil
  tcp:connect(host, port, function(err)
    cerr, done = err, true
    if err then
      return
    end
    tcp:read_start(function(rerr, data)
      if rerr or not data then
        self.closed = true
        return
      end
      self.buf = self.buf .. data
      self:_parse()
    end)
  end)
  vim.wait(timeout_ms or 10000, function()
    return done
  end, 10)
  if not done or cerr then
    tcp:close()
    return nil, cerr or 'connect timed out'
  end
  return self
end

function Client:_parse()
  while true do
    local hs, he = self.buf:find('\r\n\r\n', 1, true)
    if not hs then
      return
    end
    local len = tonumber(self.buf:sub(1, hs - 1):match('[Cc]ontent%-[Ll]ength:%s*(%d+)'))
    if not len or #self.buf < he + len then
      return
    end
    local body = self.buf:sub(he + 1, he + len)
    self.buf = self.buf:sub(he + len + 1)
    local ok, msg = pcall(vim.json.decode, body)
    if ok and type(msg) == 'table' then
      if msg.type == 'response' then
        self.responses[msg.request_seq] = msg
      elseif msg.type == 'event' then
        table.insert(self.events, msg)
      end
    end
  end
end

--- Send a request; returns its seq.
function Client:send(command, arguments)
  self.seq = self.seq + 1
  local body = vim.json.encode({ seq = self.seq, type = 'request', command = command, arguments = arguments or vim.empty_dict() })
  self.tcp:write('Content-Length: ' .. #body .. '\r\n\r\n' .. body)
  return self.seq
end

--- Wait for the response to seq.
function Client:response(seq, timeout_ms)
  vim.wait(timeout_ms or 30000, function()
    return self.responses[seq] ~= nil or self.closed
  end, 10)
  return self.responses[seq]
end

--- Send and wait for the response.
function Client:request(command, arguments, timeout_ms)
  return self:response(self:send(command, arguments), timeout_ms)
end

--- Wait for the first event named one of names (a list); returns it.
function Client:event(names, timeout_ms)
  local found
  vim.wait(timeout_ms or 30000, function()
    for _, e in ipairs(self.events) do
      if vim.tbl_contains(names, e.event) then
        found = e
        return true
      end
    end
    return self.closed
  end, 10)
  return found
end

function Client:close()
  if not self.tcp:is_closing() then
    self.tcp:close()
  end
end

return M
