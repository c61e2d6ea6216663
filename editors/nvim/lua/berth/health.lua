-- berth.health: :checkhealth berth. It checks the berth binary and its
-- version, the container daemon, the agent, and the current buffer's
-- workspace configuration, through the berth CLI (`berth version`,
-- `berth status`, `berth config`), so it works without a running sidecar.
--
-- Neovim 0.7 reports through require('health').report_*, 0.8 and 0.9
-- through vim.health.report_*, 0.10+ through vim.health.start/ok/….
local M = {}

local function reporter()
  local h = vim.health
  if h and h.start then
    return { start = h.start, ok = h.ok, warn = h.warn, error = h.error, info = h.info }
  end
  h = h and h.report_start and h or require('health')
  return { start = h.report_start, ok = h.report_ok, warn = h.report_warn, error = h.report_error, info = h.report_info }
end

--- Run argv, wait at most timeout_ms: returns code, stdout, stderr
--- (code -1 on a timeout, -2 when it can't start).
function M.run(argv, timeout_ms)
  local out, err = {}, {}
  local ok, job = pcall(vim.fn.jobstart, argv, {
    stdout_buffered = true,
    stderr_buffered = true,
    on_stdout = function(_, d)
      out = d
    end,
    on_stderr = function(_, d)
      err = d
    end,
  })
  if not ok or job <= 0 then
    return -2, '', tostring(job)
  end
  local code = vim.fn.jobwait({ job }, timeout_ms or 20000)[1]
  if code == -1 then
    vim.fn.jobstop(job)
  end
  -- The buffered callbacks run once the job's streams close.
  vim.wait(1000, function()
    return #out > 0 or #err > 0
  end, 10)
  return code, vim.trim(table.concat(out, '\n')), vim.trim(table.concat(err, '\n'))
end

-- The last line of berth's stderr that says something: its error.
local function last_error(stderr)
  local lines = vim.split(stderr or '', '\n', { plain = true })
  for i = #lines, 1, -1 do
    local l = vim.trim(lines[i])
    if l ~= '' and not l:match('^time=') then
      return l
    end
  end
  return stderr
end

function M.check()
  local r = reporter()
  local berth = require('berth')
  local cfg = berth.config

  r.start('berth: Neovim')
  local v = vim.version()
  local nv = string.format('%d.%d.%d', v.major, v.minor, v.patch)
  if vim.fn.has('nvim-0.7') == 1 then
    r.ok('Neovim ' .. nv)
  else
    r.error('Neovim ' .. nv .. ': berth needs 0.7 or later')
  end
  if pcall(require, 'dap') then
    r.ok('nvim-dap found: the `berth` adapter debugs with debugpy and delve (see berth-dap in the help)')
  else
    r.info('nvim-dap is not installed: debugging is off (see berth-dap in the help)')
  end

  r.start('berth: binary')
  local bin = cfg.cmd[1]
  local path = vim.fn.exepath(bin)
  if path == '' then
    r.error('berth binary ' .. bin .. ' not found or not executable',
      { 'set `cmd` in require("berth").setup() to the berth binary (see berth-setup in the help)',
        'build it: `make build` in the berth repository, or `go install github.com/berthdev/berth/cmd/berth@latest`' })
    return
  end
  local code, out, err = M.run({ path, 'version' }, 10000)
  if code ~= 0 then
    r.error(path .. ' version failed (exit ' .. code .. '): ' .. last_error(err))
    return
  end
  r.ok(out .. ' at ' .. path)

  local ws = berth.root()
  local argv = berth.cli_argv({ workspace = ws })

  r.start('berth: container daemon and agent')
  local scode, sout, serr = M.run(vim.list_extend(vim.deepcopy(argv), { 'status' }), 30000)
  if scode ~= 0 then
    local msg = scode == -1 and 'berth status timed out' or last_error(serr)
    r.error('workspace ' .. ws .. ': ' .. msg, { 'is the daemon running? (see berth-daemon-not-running in the help)' })
  else
    r.ok((cfg.backend or 'the default backend') .. ' answers (berth status for ' .. ws .. ')')
    local agents = 0
    for _, line in ipairs(vim.split(sout, '\n', { plain = true })) do
      local k, val = line:match('^(%S+)%s+(.*)$')
      if k == 'container' then
        r.info('container: ' .. val)
      elseif k == 'agent' then
        agents = agents + 1
        if val:match('^none') then
          r.warn('agent: ' .. val, { 'tunnels, ports and debugging need the agent (see berth-troubleshooting in the help)' })
        else
          r.ok('agent: ' .. val)
        end
      elseif k == 'stale' or k == 'hooks' then
        r.warn(k .. ': ' .. val)
      end
    end
    if agents == 0 then
      r.warn('berth status names no agent')
    end
  end

  r.start('berth: workspace configuration')
  r.info('workspace: ' .. ws .. ' (the current buffer\'s, see berth-workspaces in the help)')
  local ccode, cout, cerr = M.run(vim.list_extend(vim.deepcopy(argv), { 'config' }), 20000)
  if ccode ~= 0 then
    local msg = last_error(cerr)
    if msg:find('no container config', 1, true) then
      r.warn(msg, { 'add a .devcontainer/devcontainer.json, or set `image` in setup()' })
    else
      r.error(msg)
    end
  else
    local ok, doc = pcall(vim.json.decode, cout)
    if not ok or type(doc) ~= 'table' then
      r.error('berth config printed something that is not JSON: ' .. cout:sub(1, 200))
    else
      doc = require('berth.rpc').denil(doc)
      local c = doc.configuration or {}
      local what = c.image and ('image ' .. c.image) or (c.build and 'a build') or (c.dockerComposeFile and 'Docker Compose')
        or 'a configuration'
      r.ok('the configuration reads: ' .. what)
      for _, u in ipairs(doc.unsupported or {}) do
        r.warn('unsupported: ' .. (type(u) == 'table' and (u.key or u.name or vim.inspect(u)) .. (u.reason and (': ' .. u.reason) or '') or tostring(u)))
      end
    end
  end

  r.start('berth: sidecar')
  if berth.client and berth.client:is_running() then
    local info = berth.server and berth.server.serverInfo or {}
    r.ok('running: berth ' .. tostring(info.version or '?') .. ', workspaces used: '
      .. (next(berth.workspaces) and table.concat(vim.tbl_keys(berth.workspaces), ', ') or 'none yet'))
  else
    r.info('not running: the first berth command starts it')
  end
end

return M
