-- berth.dap: nvim-dap's adapter `berth` and configurations for debugpy and
-- delve, through berth/debug. The adapter is a function: it asks berth to
-- start the debug server in the container, then points nvim-dap at the
-- host end of berth's tunnel with berth's attach (or launch) configuration.
local M = {}

local function berth()
  return require('berth')
end

-- Fields of a dap configuration that go to berth/debug as they are.
local keys = { 'program', 'module', 'args', 'cwd', 'env', 'stopOnEntry', 'justMyCode', 'command', 'port', 'test', 'tests' }

--- The configurations the plugin adds, per filetype.
M.configurations = {
  python = {
    { type = 'berth', request = 'attach', name = 'berth: debugpy (this file)', berthAdapter = 'debugpy', program = '${file}' },
    { type = 'berth', request = 'attach', name = 'berth: debugpy (test under the cursor)', berthAdapter = 'debugpy',
      berthTests = 'nearest' },
  },
  go = {
    { type = 'berth', request = 'attach', name = 'berth: delve (this package)', berthAdapter = 'delve',
      program = '${fileDirname}' },
    { type = 'berth', request = 'attach', name = 'berth: delve (test under the cursor)', berthAdapter = 'delve',
      berthTests = 'nearest' },
  },
}

--- Parameters of berth/debug for a dap configuration. berthTests =
--- 'nearest' debugs the test under the cursor (test = true, tests = {id});
--- berthWorkspace overrides the current buffer's workspace.
function M.params(config)
  local params = { adapter = config.berthAdapter or 'debugpy' }
  for _, k in ipairs(keys) do
    local v = config[k]
    if v ~= nil and not (type(v) == 'table' and next(v) == nil) then
      params[k] = v
    end
  end
  params.workspace = config.berthWorkspace or berth().root()
  if config.berthTests == 'nearest' then
    local t, why = require('berth.tests').nearest(0, params.workspace)
    if not t then
      return nil, why
    end
    params.test, params.tests = true, { t.id }
  end
  return params
end

--- A dap configuration with berth/debug's `attach` merged in: its request
--- (attach, or launch for `dlv dap`) and fields, keeping type and name.
function M.merge(config, attach)
  local out = vim.deepcopy(config)
  for k, v in pairs(attach or {}) do
    if k ~= 'type' and k ~= 'name' then
      out[k] = v
    end
  end
  out.request = (attach and attach.request) or 'attach'
  return out
end

--- The adapter function: cb(adapter) once berth/debug answers.
function M.adapter(cb, config)
  local params, why = M.params(config)
  if not params then
    berth().notify('debug: ' .. tostring(why), vim.log.levels.ERROR)
    return
  end
  berth().request('berth/debug', params, function(err, res)
    if err then
      return
    end
    berth().last.debug = res
    local attach = res.attach or {}
    -- Older nvim-dap ignores enrich_config for function adapters: update
    -- the configuration in place as well.
    for k, v in pairs(M.merge(config, attach)) do
      config[k] = v
    end
    cb({
      type = 'server',
      host = res.host,
      port = res.port,
      enrich_config = function(c, on_config)
        on_config(M.merge(c, attach))
      end,
    })
  end)
end

--- Register the adapter and configurations with nvim-dap; false if it
--- can't be required.
function M.setup()
  local ok, dap = pcall(require, 'dap')
  if not ok then
    return false
  end
  dap.adapters.berth = M.adapter
  for ft, confs in pairs(M.configurations) do
    dap.configurations[ft] = dap.configurations[ft] or {}
    for _, c in ipairs(confs) do
      local present = false
      for _, have in ipairs(dap.configurations[ft]) do
        if have.type == 'berth' and have.name == c.name then
          present = true
        end
      end
      if not present then
        table.insert(dap.configurations[ft], vim.deepcopy(c))
      end
    end
  end
  return true
end

--- Debug the test under the cursor with nvim-dap (delve or debugpy by the
--- file's type).
function M.debug_test()
  local ok, dap = pcall(require, 'dap')
  if not ok then
    berth().notify('debugging needs nvim-dap (:help berth-dap)', vim.log.levels.ERROR)
    return
  end
  M.setup()
  local adapter = vim.bo.filetype == 'go' and 'delve' or 'debugpy'
  dap.run({ type = 'berth', request = 'attach', name = 'berth: ' .. adapter .. ' (test under the cursor)',
    berthAdapter = adapter, berthTests = 'nearest' })
end

return M
