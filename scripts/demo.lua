-- scripts/demo.lua -- `make demo`: what crlab.explore shows, as PNGs.
-- How CE, NLLR, CRL, focal loss and label-smoothed CE respond to the
-- confidence p_y of the true class (values, gradient weights), sweeps of
-- their parameters and of K, one logit vector's gradients, and then three
-- small real Fashion-MNIST runs (CE, CRL, NLLR) seen through their
-- reliability diagrams, confidence histograms and logit norms.
--   crlab scripts/demo.lua [--out runs/demo] [--train-limit 6000] [--test-limit 2000] [--epochs 4] [--lr 0.002]
--                          [--no-train]
-- The three runs share a small learning rate: at 0.05 (the fmnist suite's)
-- NLLR's logits blow up inside the first epoch and the network dies (every
-- ReLU off, 10% accuracy, logits = the last layer's bias), so the norm per
-- epoch shows only the aftermath; at 0.002 its growth shows epoch by epoch.
local ex = require 'crlab.explore'
local train = require 'crlab.train'
local plot = require 'crlab.plot'

local o = {out = 'runs/demo', ['train-limit'] = 6000, ['test-limit'] = 2000, epochs = 4, lr = 0.002, train = true}
local i = 1
while i <= #arg do
  local k = arg[i]:match('^%-%-(.+)$')
  if k == 'no-train' then
    o.train = false
    i = i + 1
  elseif k and o[k] ~= nil and k ~= 'train' then
    if arg[i + 1] == nil then
      io.stderr:write('demo: --' .. k .. ' needs a value\n')
      os.exit(2, true)
    end
    o[k] = k == 'out' and arg[i + 1] or tonumber(arg[i + 1])
    if o[k] == nil then
      io.stderr:write('demo: --' .. k .. ' takes a number, got ' .. arg[i + 1] .. '\n')
      os.exit(2, true)
    end
    i = i + 2
  else
    io.stderr:write("demo: unknown argument '" .. arg[i] .. "'\n" ..
                    'usage: crlab scripts/demo.lua [--out DIR] [--train-limit N] [--test-limit N] [--epochs N] ' ..
                    '[--lr X] [--no-train]\n')
    os.exit(2, true)
  end
end
if not plot.available() then
  io.stderr:write('demo: gnuplot was not found (apt-get install gnuplot-nox); the demo writes PNGs\n')
  os.exit(1, true)
end
-- the runs' options, checked before any work
local LOSSES, run_opts = {'ce', 'crl', 'nllr'}, {}
for _, l in ipairs(o.train and LOSSES or {}) do
  local ok, opts = pcall(train.parse, {'--loss', l, '--model', 'cnn', '--epochs', tostring(o.epochs),
                                      '--lr', tostring(o.lr), '--nesterov', '--weight-decay', '5e-4', '--seed', '1',
                                      '--train-limit', tostring(o['train-limit']),
                                      '--test-limit', tostring(o['test-limit']), '--out', o.out .. '/' .. l, '--quiet', '--overwrite'})
  if not ok then
    io.stderr:write('demo: ' .. tostring(opts) .. '\n')
    os.exit(2, true)
  end
  run_opts[l] = opts
end

local out = o.out
assert(os.execute("mkdir -p '" .. out:gsub("'", "'\\''") .. "'") == 0, 'demo: cannot make ' .. out)
local written = {}
local function png(name)
  written[#written + 1] = out .. '/' .. name
  return out .. '/' .. name
end
local function section(title) print('\n== ' .. title .. ' ==') end

-- 1. the five losses against p_y
local losses = {'ce', 'crl{alpha=1.5}', 'nllr', 'focal{gamma=2}', 'ce{smoothing=0.1}'}
section('the losses against p_y (K = 10)')
ex.curve{losses = losses, what = 'value', yrange = {-4, 6}, file = png('losses.png')}
ex.curve{losses = losses, what = 'weight', yrange = {-2, 6}, quiet = true, file = png('weights.png')}
ex.curve{losses = losses, what = 'grad', quiet = true, file = png('gradients.png')}
print('\nCRL(1.5, 1) against CE: the gradient weight w(p_y) = (alpha+1)/(alpha+1-p_y)')
ex.curve{losses = {'ce', 'crl{alpha=1.5}'}, what = 'weight', points = 11, quiet = true, terminal = true,
         height = 20, yrange = {0.9, 1.8}}

-- 2. sweeps of each parameter, and of K
section('sweeps')
ex.sweep{loss = 'crl', param = 'alpha', values = {0, 0.5, 1, 1.5, 2, 4}, what = 'weight', yrange = {0, 6},
         file = png('sweep_crl_alpha.png')}
ex.sweep{loss = 'crl{alpha=1.5}', param = 'beta', values = {0.5, 1, 2}, what = 'value', quiet = true,
         file = png('sweep_crl_beta.png')}
ex.sweep{loss = 'focal', param = 'gamma', values = {0, 0.5, 1, 2, 5}, what = 'weight', quiet = true,
         file = png('sweep_focal_gamma.png')}
ex.sweep{loss = 'ce', param = 'eps', values = {0, 0.05, 0.1, 0.2}, what = 'weight', yrange = {-2, 1.5}, quiet = true,
         file = png('sweep_ce_eps.png')}
ex.sweep{loss = 'crl{alpha=1.5}', param = 'K', values = {2, 10, 100, 1000}, over = 'margin', range = {-5, 15},
         what = 'value', file = png('sweep_crl_K.png')}

-- 3. one logit vector
section('one logit vector')
ex.logits({2, 1, 0.1, -1}, 0, losses)

-- 4. real runs
if o.train then
  section(string.format('training CE, CRL(1.5, 1) and NLLR on %d Fashion-MNIST images for %d epochs, lr %g ' ..
                        '(test: %d images)', o['train-limit'], o.epochs, o.lr, o['test-limit']))
  local dirs = {}
  for _, l in ipairs(LOSSES) do
    local dir, opts = out .. '/' .. l, run_opts[l]
    local t0 = os.time()
    local ok, r = pcall(train.run, opts)
    if ok then
      local last = r.history[#r.history]
      print(string.format('%-5s test acc %.2f%%, ECE %.4f, final train loss %.4f (%d s) -> %s', l,
                          100 * last.test_acc, last.test_ece, last.train_loss, os.time() - t0, dir))
      dirs[#dirs + 1] = dir
    else
      -- NLLR is unbounded below and may blow up: show what it wrote before
      print(string.format('%-5s stopped: %s', l, tostring(r)))
      local f = io.open(dir .. '/metrics.jsonl')
      local any = f and f:read('*l')
      if f then f:close() end
      if any then dirs[#dirs + 1] = dir end
    end
  end
  if #dirs == 0 then
    io.stderr:write('demo: no run wrote any epoch, so there are no run plots\n')
    os.exit(1, true)
  end
  section('calibration at the last epoch')
  ex.reliability(dirs, {file = png('reliability.png')})
  ex.confidence(dirs, {file = png('confidence.png')})
  section('the growth of the logit norm')
  ex.logitNorm(dirs, {file = png('logit_norm.png'), logy = true, quiet = true})
  ex.logitNorm(dirs, {terminal = true, height = 20, logy = true})
end

print('\nwrote ' .. table.concat(written, '\n      '))
