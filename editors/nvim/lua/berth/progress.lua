-- berth.progress: berth's work-done progress ($/progress for the
-- workDoneToken the plugin sends on long requests) as one message that
-- updates in place, instead of a notification per step.
--
-- The display is config.progress: 'echo' (default: the command line,
-- overwritten on each step and kept out of :messages), 'notify' (one
-- vim.notify per step, passing `replace` so that nvim-notify and the like
-- update one window), false (nothing), or a function(task) called on every
-- change, for a UI of your own (task: {token, title, message, percentage,
-- done}).
local M = {}

M.tasks = {} -- token -> task
M.updates = 0 -- how many times a task was displayed (the tests count them)

local next_token = 0

--- A fresh token for a request's workDoneToken.
function M.token(kind)
  next_token = next_token + 1
  return 'berth-' .. (kind or 'work') .. '-' .. next_token
end

--- The one line that shows a task.
function M.text(task)
  local s = task.title or 'berth'
  if task.message and task.message ~= '' then
    s = s .. ': ' .. task.message
  end
  if task.percentage then
    s = s .. ' (' .. task.percentage .. '%)'
  end
  if task.done then
    s = s .. ' … done'
  end
  return s
end

local function display(task, how)
  M.updates = M.updates + 1
  if type(how) == 'function' then
    how(task)
  elseif how == 'notify' then
    local ok, rec = pcall(vim.notify, M.text(task), vim.log.levels.INFO,
      { title = 'berth', replace = task.notification, hide_from_history = not task.done })
    if ok and type(rec) == 'table' then
      task.notification = rec
    end
  elseif how == 'echo' then
    local text = M.text(task)
    local width = vim.o.columns - 12
    if width > 10 and #text > width then
      text = text:sub(1, width) .. '…'
    end
    vim.api.nvim_echo({ { text, task.done and 'Normal' or 'MoreMsg' } }, false, {})
  end
end

--- Handle a $/progress notification's params. how is config.progress.
function M.handle(params, how)
  local token, v = params.token, params.value or {}
  if token == nil then
    return
  end
  local task = M.tasks[token]
  if v.kind == 'begin' then
    task = { token = token, title = v.title, message = v.message, percentage = v.percentage }
    M.tasks[token] = task
  elseif not task then
    return
  elseif v.kind == 'report' then
    task.message = v.message or task.message
    task.percentage = v.percentage or task.percentage
  elseif v.kind == 'end' then
    task.message = v.message or task.message
    task.done = true
    M.tasks[token] = nil
  end
  if how then
    display(task, how)
  end
end

return M
