-- scripts/bench.lua -- training and inference throughput (images/s) of the
-- CIFAR ResNet-20 (batch 128, 3x32x32) and of the default Fashion-MNIST
-- model ('cnn', batch 128, 1x28x28), measured here and, when PyTorch is
-- installed, in PyTorch on the same threads in the same run, with the
-- ratio. Training = forward + backward + SGD step.
--   crlab scripts/bench.lua [--threads N] [--iters N]
local ffi = require 'ffi'
local crlab = require 'crlab'
local models = require 'crlab.models'
local optim = require 'crlab.optim'
local json = require 'crlab.json'
local C = crlab.C

local threads, iters = crlab.C.crl_get_num_threads(), 10
for i = 1, #arg do
  if arg[i] == '--threads' then threads = tonumber(arg[i + 1]) end
  if arg[i] == '--iters' then iters = tonumber(arg[i + 1]) end
end
C.crl_set_num_threads(threads)

local function cpu_name()
  local f = io.open('/proc/cpuinfo')
  if not f then return 'unknown CPU' end
  local s = f:read('*a')
  f:close()
  return (s:match('model name%s*:%s*([^\n]+)') or 'unknown CPU')
end

local function measure(name, shape)
  crlab.manualSeed(0)
  local model = models.build(name, {channels = shape[2], classes = 10, size = shape[3]}):skipInputGradient()
  local params, grads, ranges = model:getParameters()
  local opt = optim.sgd(params, grads, {momentum = 0.9, weightDecay = 5e-4}, ranges)
  local crit = crlab.loss.ce()
  local x = crlab.randn(shape)
  local y = crlab.tensor({0, 1, 2, 3, 4, 5, 6, 7}, 'int32')
  y = crlab.randperm(shape[1]):int()
  for i = 1, shape[1] do y[i] = y[i] % 10 end
  local function step()
    local out = model:forward(x)
    crit:forward(out, y)
    grads:zero()
    model:backward(x, crit:backward(out, y))
    opt:step(0.01)
  end
  step() step()
  local t0 = C.crl_time_seconds()
  for _ = 1, iters do step() end
  local train = shape[1] * iters / (C.crl_time_seconds() - t0)
  model:evaluate()
  model:forward(x)
  local ii = iters * 3
  t0 = C.crl_time_seconds()
  for _ = 1, ii do model:forward(x) end
  local infer = shape[1] * ii / (C.crl_time_seconds() - t0)
  return train, infer
end

local function torch_measure(name, batch)
  for _, py in ipairs({'python3', '/usr/bin/python3'}) do
    local p = io.popen(string.format('%s scripts/bench_torch.py %s %d %d %d %d 2>/dev/null', py, name, batch,
                                     threads, iters, iters * 3))
    local out = p:read('*a')
    p:close()
    local line = out:match('{.-}')
    if line then return json.decode(line) end
  end
  return nil
end

print(string.format('machine: %s, %d threads; batch 128; %d training and %d inference iterations', cpu_name(),
                    threads, iters, iters * 3))
print(string.format('%-10s %-9s %12s %12s %8s', 'model', 'pass', 'crlab img/s', 'torch img/s', 'ratio'))
for _, cfg in ipairs({{'resnet20', {128, 3, 32, 32}}, {'cnn', {128, 1, 28, 28}}}) do
  local tr, inf = measure(cfg[1], cfg[2])
  local pt = torch_measure(cfg[1], cfg[2][1])
  for _, row in ipairs({{'train', tr, pt and pt.train_ips}, {'inference', inf, pt and pt.infer_ips}}) do
    print(string.format('%-10s %-9s %12.0f %12s %8s', cfg[1], row[1], row[2],
                        row[3] and string.format('%.0f', row[3]) or 'n/a',
                        row[3] and string.format('%.2fx', row[2] / row[3]) or 'n/a'))
  end
  if pt then print(string.format('           (PyTorch %s)', pt.torch)) end
end
