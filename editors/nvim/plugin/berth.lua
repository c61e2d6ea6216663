-- berth.nvim's commands, defined at startup so that they work before (or
-- without) require('berth').setup(); they load the plugin on first use.
if vim.g.loaded_berth then
  return
end
vim.g.loaded_berth = true

if vim.fn.has('nvim-0.7') == 0 then
  vim.api.nvim_echo({ { 'berth.nvim needs Neovim 0.7 or later', 'WarningMsg' } }, true, {})
  return
end

require('berth').create_commands()

vim.api.nvim_create_autocmd('VimLeavePre', {
  group = vim.api.nvim_create_augroup('berth_plugin', { clear = true }),
  callback = function()
    local berth = package.loaded['berth']
    if berth then
      berth.stop()
    end
  end,
})
