-- scripts/compare.lua -- the main job: train the same model with
-- cross-entropy and with CRL(alpha, beta) at the same seed and budget,
-- print the results side by side and plot the curves.
--   crlab scripts/compare.lua [--epochs 5] [--model cnn] [--losses ce,crl] [any scripts/train.lua option]
-- Results go to runs/compare/<loss>/ and runs/compare/curves.png.
local train = require 'crlab.train'
local plot = require 'crlab.plot'

local args, losses, out = {}, {'ce', 'crl'}, 'runs/compare'
local i = 1
while i <= #arg do
  if arg[i] == '--losses' then
    losses = {}
    for l in arg[i + 1]:gmatch('[^,]+') do losses[#losses + 1] = l end
    i = i + 2
  elseif arg[i] == '--out' then
    out = arg[i + 1]
    i = i + 2
  else
    args[#args + 1] = arg[i]
    i = i + 1
  end
end

-- The default budget: 5 epochs of the small CNN on Fashion-MNIST with
-- SGD + Nesterov momentum and a cosine schedule (under 2 minutes a loss on
-- 2 cores). Options given on the command line override these.
local defaults = {'--epochs', '5', '--lr', '0.05', '--nesterov', '--weight-decay', '5e-4'}
local results = {}
for _, loss in ipairs(losses) do
  local a = {}
  for _, v in ipairs(defaults) do a[#a + 1] = v end
  for _, v in ipairs(args) do a[#a + 1] = v end
  for _, v in ipairs({'--loss', loss, '--out', out .. '/' .. loss}) do a[#a + 1] = v end
  local ok, o = pcall(train.parse, a)
  if not ok or o == nil then
    io.stderr:write(tostring(o or train.usage()), '\n')
    os.exit(2)
  end
  print(string.format('\n== %s ==', loss))
  local r = train.run(o)
  local last = r.history[#r.history]
  local secs, ips = 0, 0
  for _, h in ipairs(r.history) do
    secs = secs + h.epoch_seconds
    ips = ips + h.images_per_sec / #r.history
  end
  results[#results + 1] = {name = loss == 'crl' and string.format('CRL(%g,%g)', o.alpha, o.beta) or loss:upper(),
                           r = r, last = last, secs = secs, ips = ips, o = o}
end

print(string.format('\n%s on %s, %d epochs, seed %d', results[1].o.model, results[1].o.dataset,
                    results[1].o.epochs, results[1].o.seed))
print(string.format('%-12s %10s %10s %10s %12s %8s %9s %9s', 'loss', 'test acc', 'best acc', 'best ep',
                    'train loss', 'ECE', 'time', 'img/s'))
for _, x in ipairs(results) do
  print(string.format('%-12s %9.2f%% %9.2f%% %10d %12.4f %8.4f %8.0fs %9.0f', x.name, 100 * x.last.test_acc,
                      100 * x.r.best_acc, x.r.best_epoch, x.last.train_loss, x.last.test_ece, x.secs, x.ips))
end

if plot.available() then
  local acc, tl = {}, {}
  for _, x in ipairs(results) do
    local ep, a, l = {}, {}, {}
    for j, h in ipairs(x.r.history) do ep[j], a[j], l[j] = h.epoch, 100 * h.test_acc, h.train_loss end
    acc[#acc + 1] = {name = x.name, x = ep, y = a, style = 'linespoints'}
    tl[#tl + 1] = {name = x.name, x = ep, y = l, style = 'linespoints'}
  end
  plot.lines{file = out .. '/curves.png', title = 'Test accuracy (%) by epoch', xlabel = 'epoch',
             ylabel = 'test accuracy (%)', series = acc, key = 'bottom right', xtics = 1}
  plot.lines{file = out .. '/train_loss.png', title = 'Training loss by epoch', xlabel = 'epoch',
             ylabel = 'training loss', series = tl, xtics = 1}
  print('\ncurves: ' .. out .. '/curves.png, ' .. out .. '/train_loss.png')
end
