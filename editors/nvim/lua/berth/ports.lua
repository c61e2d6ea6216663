-- berth.ports: the ports berth detects in a workspace's container
-- (berth/ports, berth/portsChanged), their forwards, and the list buffer
-- of :BerthPorts, from which a port is forwarded, closed or opened.
local api = vim.api

local M = {}

M.state = {} -- workspace -> {ports = [Port], forwards = [Tunnel]}
M.announced = {} -- workspace .. ':' .. port .. ':' .. tunnelId -> true: auto-forwards already shown
M.opened_once = {} -- workspace .. ':' .. port -> true: openBrowserOnce done

local function berth()
  return require('berth')
end

--- The URL of a forwarded port on the host.
function M.url(host_port)
  return 'http://localhost:' .. tostring(host_port)
end

--- The forward of a port, from a Port's tunnelId or the workspace's forwards.
function M.forward_of(ws, port)
  local st = M.state[ws] or {}
  for _, f in ipairs(st.forwards or {}) do
    if (port.tunnelId and f.tunnelId == port.tunnelId)
      or (not port.tunnelId and f.direction ~= 'reverse' and f.containerPort == port.port and f.hostPort) then
      return f
    end
  end
  if port.tunnelId and port.hostPort then
    return { tunnelId = port.tunnelId, host = '127.0.0.1', hostPort = port.hostPort, auto = true }
  end
  return nil
end

--- Lines of the list for workspace ws, and the row each line stands for.
function M.render(ws)
  local st = M.state[ws] or { ports = {}, forwards = {} }
  local lines = {
    'berth ports of ' .. ws,
    'f forward  c close forward  o open in browser  a forward a port…  r refresh  q quit',
    '',
    string.format('%-7s %-15s %-22s %-14s %s', 'PORT', 'BIND', 'PROCESS', 'LABEL', 'FORWARD'),
  }
  local rows = {}
  local shown = {}
  local ports = vim.deepcopy(st.ports or {})
  table.sort(ports, function(a, b)
    return a.port < b.port
  end)
  for _, p in ipairs(ports) do
    local f = M.forward_of(ws, p)
    local proc = ''
    if p.process then
      proc = (p.process.name or '?') .. ' (' .. tostring(p.process.pid or '?') .. ')'
    end
    local fwd = '-'
    if f then
      shown[f.tunnelId or ''] = true
      fwd = string.format('%s:%s (%s%s)', f.host or '127.0.0.1', tostring(f.hostPort or f.hostSocket or '?'),
        tostring(f.tunnelId), (f.auto or p.tunnelId) and ', auto' or '')
    elseif p.onAutoForward == 'ignore' then
      fwd = '- (ignored)'
    end
    table.insert(lines, string.format('%-7s %-15s %-22s %-14s %s', tostring(p.port), p.bindAddress or '?', proc,
      p.label or '', fwd))
    rows[#lines] = { port = p.port, tunnelId = f and f.tunnelId, hostPort = f and f.hostPort, label = p.label }
  end
  if #ports == 0 then
    table.insert(lines, '(no listening ports detected)')
  end
  local others = {}
  for _, f in ipairs(st.forwards or {}) do
    if f.direction ~= 'reverse' and not shown[f.tunnelId] then
      table.insert(others, f)
    end
  end
  if #others > 0 then
    table.insert(lines, '')
    table.insert(lines, 'more forwards:')
    for _, f in ipairs(others) do
      table.insert(lines, string.format('%-7s %-15s %-22s %-14s %s:%s (%s%s)', tostring(f.containerPort),
        f.containerHost or '', '', '', f.host or '127.0.0.1', tostring(f.hostPort or f.hostSocket or '?'),
        tostring(f.tunnelId), f.auto and ', auto' or ''))
      rows[#lines] = { port = f.containerPort, tunnelId = f.tunnelId, hostPort = f.hostPort }
    end
  end
  return lines, rows
end

local function list_buf(ws)
  local name = 'berth://ports/' .. ws
  for _, b in ipairs(api.nvim_list_bufs()) do
    if api.nvim_buf_is_valid(b) and api.nvim_buf_get_name(b) == name then
      return b, false
    end
  end
  local b = api.nvim_create_buf(false, true)
  api.nvim_buf_set_name(b, name)
  api.nvim_buf_set_option(b, 'buftype', 'nofile')
  api.nvim_buf_set_option(b, 'bufhidden', 'hide')
  api.nvim_buf_set_option(b, 'swapfile', false)
  api.nvim_buf_set_var(b, 'berth_workspace', ws)
  return b, true
end

--- Redraw the list buffer of ws, if there is one (or create it when make).
function M.redraw(ws, make)
  local b, fresh
  if make then
    b, fresh = list_buf(ws)
  else
    local name = 'berth://ports/' .. ws
    for _, x in ipairs(api.nvim_list_bufs()) do
      if api.nvim_buf_is_valid(x) and api.nvim_buf_get_name(x) == name then
        b = x
      end
    end
    if not b then
      return nil
    end
  end
  local lines, rows = M.render(ws)
  api.nvim_buf_set_option(b, 'modifiable', true)
  api.nvim_buf_set_lines(b, 0, -1, false, lines)
  api.nvim_buf_set_option(b, 'modifiable', false)
  M.rows = M.rows or {}
  M.rows[b] = rows
  if fresh then
    M.map_keys(b)
  end
  return b
end

--- The row under the cursor in the list buffer b (or of line lnum).
function M.row(b, lnum)
  b = b or api.nvim_get_current_buf()
  lnum = lnum or api.nvim_win_get_cursor(0)[1]
  return (M.rows and M.rows[b] or {})[lnum]
end

local function ws_of(b)
  return api.nvim_buf_get_var(b, 'berth_workspace')
end

--- Actions on the row at lnum of list buffer b; cb(err, res) when berth answers.
function M.forward_row(b, lnum, cb)
  local r = M.row(b, lnum)
  if not r then
    return
  end
  berth().forward(r.port, { workspace = ws_of(b) }, function(err, res)
    M.refresh(ws_of(b), cb and function()
      cb(err, res)
    end)
  end)
end

function M.close_row(b, lnum, cb)
  local r = M.row(b, lnum)
  if not r or not r.tunnelId then
    berth().notify('no forward on this line', vim.log.levels.WARN)
    return
  end
  berth().close_tunnel(r.tunnelId, function(err, res)
    M.refresh(ws_of(b), cb and function()
      cb(err, res)
    end)
  end)
end

function M.open_row(b, lnum)
  local r = M.row(b, lnum)
  if not r or not r.hostPort then
    berth().notify('this port is not forwarded: f forwards it', vim.log.levels.WARN)
    return
  end
  berth().open_url(M.url(r.hostPort))
end

function M.map_keys(b)
  local function map(lhs, fn, desc)
    vim.keymap.set('n', lhs, fn, { buffer = b, nowait = true, silent = true, desc = desc })
  end
  map('f', function()
    M.forward_row(b)
  end, 'berth: forward this port')
  map('c', function()
    M.close_row(b)
  end, 'berth: close this forward')
  map('o', function()
    M.open_row(b)
  end, 'berth: open this port in the browser')
  map('<CR>', function()
    M.open_row(b)
  end, 'berth: open this port in the browser')
  map('a', function()
    vim.ui.input({ prompt = 'container port to forward: ' }, function(port)
      if port and tonumber(port) then
        berth().forward(tonumber(port), { workspace = ws_of(b) }, function()
          M.refresh(ws_of(b))
        end)
      end
    end)
  end, 'berth: forward a container port')
  map('r', function()
    M.refresh(ws_of(b))
  end, 'berth: refresh the ports')
  map('q', '<cmd>close<CR>', 'berth: close the list')
end

--- Ask berth for ws's ports (berth/ports) and forwards (berth/tunnels:
--- the auto-forwards and this connection's own), redraw; cb(err, state).
--- Against a berth without berth/ports (-32601), the list shows the
--- tunnels only.
function M.refresh(ws, cb)
  local function done(err)
    M.redraw(ws)
    if cb then
      cb(err, M.state[ws])
    end
  end
  berth().request('berth/ports', { workspace = ws }, function(err, res)
    if err and err.code ~= -32601 then
      if cb then
        cb(err, nil)
      end
      return
    end
    local st = M.state[ws] or {}
    if not err then
      st.ports = res.ports or {}
    end
    st.forwards = (res and res.forwards) or st.forwards or {}
    M.state[ws] = st
    berth().request('berth/tunnels', { workspace = ws }, function(e2, tunnels)
      if not e2 then
        local seen, all = {}, {}
        for _, t in ipairs(tunnels or {}) do
          seen[t.tunnelId] = true
          table.insert(all, t)
        end
        for _, f in ipairs(st.forwards) do
          if not seen[f.tunnelId] then
            table.insert(all, f)
          end
        end
        st.forwards = all
      end
      done(e2)
    end)
    return err ~= nil
  end)
end

--- :BerthPorts: open the list of ws in a split and refresh it.
function M.open(ws, cb)
  local b = M.redraw(ws, true)
  local win
  for _, w in ipairs(api.nvim_list_wins()) do
    if api.nvim_win_get_buf(w) == b then
      win = w
    end
  end
  if not win then
    vim.cmd('botright split')
    api.nvim_win_set_buf(0, b)
  end
  M.refresh(ws, cb)
  return b
end

--- berth/portsChanged: keep the state, redraw, and announce new
--- auto-forwards as their onAutoForward says.
function M.changed(params)
  local ws = params.workspace
  if not ws then
    return
  end
  local st = M.state[ws] or { forwards = {} }
  st.ports = params.ports or {}
  M.state[ws] = st
  local seen = {}
  for _, p in ipairs(st.ports) do
    if p.tunnelId then
      local key = ws .. ':' .. p.port .. ':' .. p.tunnelId
      seen[key] = true
      if not M.announced[key] then
        M.announced[key] = true
        M.announce(ws, p)
      end
    end
  end
  -- A forward that went away may come back (a restarted server): forget it.
  for key in pairs(M.announced) do
    if key:sub(1, #ws + 1) == ws .. ':' and not seen[key] then
      M.announced[key] = nil
    end
  end
  -- An open list also wants the forwards (berth/ports has them).
  if M.redraw(ws) then
    M.refresh(ws)
  end
end

function M.announce(ws, p)
  local how = p.onAutoForward or 'notify'
  local host_port = p.hostPort or (M.forward_of(ws, p) or {}).hostPort
  local what = 'port ' .. p.port .. (p.label and (' (' .. p.label .. ')') or '')
  local where = host_port and (' is forwarded to localhost:' .. host_port) or ' is forwarded'
  if how == 'notify' then
    berth().notify(what .. where .. ' (:BerthPorts)', vim.log.levels.INFO)
  elseif how == 'openBrowser' or how == 'openPreview' or how == 'openBrowserOnce' then
    local once = ws .. ':' .. p.port
    if how == 'openBrowserOnce' and M.opened_once[once] then
      return
    end
    M.opened_once[once] = true
    if host_port then
      berth().open_url(M.url(host_port))
    end
  end
end

return M
