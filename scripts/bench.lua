-- scripts/bench.lua -- training and inference throughput (images/s) of
-- the CIFAR ResNet-20 and -56, WRN-16-4, DenseNet-BC-40-12 (3x32x32),
-- ResNet-18 (3x224x224, batch 32) and the default Fashion-MNIST model
-- ('cnn', 1x28x28), measured here and, when PyTorch is installed, in
-- PyTorch on the same threads in the same run, NCHW and channels_last, with
-- the ratio against the better. Training = forward + backward + SGD step.
--   crlab scripts/bench.lua [--threads N] [--iters N] [--rounds N] [--models a,b] [--profile]
--
-- --device cuda: the GPU benchmark instead -- training images/s of ResNet-20,
-- -56, -110 (3x32x32) and ResNet-50 (3x224x224), batch 128, against PyTorch
-- on the same GPU (cudnn.benchmark, TF32 allowed, the better of NCHW and
-- channels_last, and torch.compile where it compiles within a time limit):
--   crlab scripts/bench.lua --device cuda [--iters N] [--models a,b] [--budget S]
--       [--compile-limit S] [--no-compile] [--bf16] [--no-torch]
-- --budget S spreads S seconds over the whole run (columns that no longer
-- fit are left out); CRLAB_PYTHON names the Python command (scripts/gpu-check.sh
-- sets it so that Python does not see the packed libraries).
local ffi = require 'ffi'
local crlab = require 'crlab'
local models = require 'crlab.models'
local optim = require 'crlab.optim'
local json = require 'crlab.json'
local C = crlab.C

local threads, iters = crlab.C.crl_get_num_threads(), 10
local device = 'cpu'
for i = 1, #arg do
  if arg[i] == '--threads' then threads = tonumber(arg[i + 1]) end
  if arg[i] == '--iters' then iters = tonumber(arg[i + 1]) end
  if arg[i] == '--device' then device = arg[i + 1] end
end
C.crl_set_num_threads(threads)
if device ~= 'cpu' then
  if device ~= 'cuda' then
    io.stderr:write("bench: unknown device '", tostring(device), "' (cpu, cuda)\n")
    os.exit(2)
  end
  local gpu = dofile((os.getenv('CRLAB_HOME') or '.') .. '/scripts/bench_gpu.lua')
  os.exit(gpu.main(arg) and 0 or 1)
end

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
  local y = crlab.randperm(shape[1]):int()
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

local function torch_measure(name, batch, layout)
  for _, py in ipairs({'python3', '/usr/bin/python3'}) do
    local p = io.popen(string.format('%s scripts/bench_torch.py %s %d %d %d %d %s 2>/dev/null', py, name, batch,
                                     threads, iters, iters * 3, layout))
    local out = p:read('*a')
    p:close()
    local line = out:match('{.-}')
    if line then return json.decode(line) end
  end
  return nil
end

-- A per-layer time profile of one training step (forward and backward of
-- each leaf module, summed by kind), for finding the next bottleneck.
local function profile(name, shape)
  crlab.manualSeed(0)
  local model = models.build(name, {channels = shape[2], classes = 10, size = shape[3]}):skipInputGradient()
  local x = crlab.randn(shape)
  local times, order = {}, {}
  local function wrap(m)
    local kids = m:children()
    if #kids > 0 then
      for _, k in ipairs(kids) do wrap(k) end
      return
    end
    local key = tostring(m):match('^nn%.([%w]+)') or m.__typename
    if key == 'Conv2d' then key = string.format('Conv2d %d->%d s%d', m.inC, m.outC, m.params.stride_h) end
    if not times[key] then times[key] = {0, 0}; order[#order + 1] = key end
    local uo, bw = m.updateOutput, m.backward
    m.updateOutput = function(self, i)
      local t0 = C.crl_time_seconds(); local r = uo(self, i); times[key][1] = times[key][1] + C.crl_time_seconds() - t0
      return r
    end
    m.backward = function(self, i, g)
      local t0 = C.crl_time_seconds(); local r = bw(self, i, g); times[key][2] = times[key][2] + C.crl_time_seconds() - t0
      return r
    end
  end
  wrap(model)
  local crit = crlab.loss.ce()
  local y = crlab.randperm(shape[1]):int()
  for i = 1, shape[1] do y[i] = y[i] % 10 end
  local steps = 3
  for s = 0, steps do
    if s == 1 then for _, k in ipairs(order) do times[k] = {0, 0} end end
    local out = model:forward(x)
    crit:forward(out, y)
    model:backward(x, crit:backward(out, y))
  end
  print(string.format('\nper-layer profile of %s (batch %d, ms per step, forward / backward):', name, shape[1]))
  local total = 0
  for _, k in ipairs(order) do total = total + times[k][1] + times[k][2] end
  table.sort(order, function(a, b) return times[a][1] + times[a][2] > times[b][1] + times[b][2] end)
  for _, k in ipairs(order) do
    local f, b = times[k][1] * 1e3 / steps, times[k][2] * 1e3 / steps
    print(string.format('  %-22s %8.2f %8.2f  %5.1f%%', k, f, b, 100 * (times[k][1] + times[k][2]) / total))
  end
end

local configs = {
  {'resnet20', {128, 3, 32, 32}}, {'resnet56', {128, 3, 32, 32}}, {'wrn-16-4', {128, 3, 32, 32}},
  {'densenet-bc-40-12', {64, 3, 32, 32}}, {'resnet18', {32, 3, 224, 224}}, {'cnn', {128, 1, 28, 28}},
}
local only = nil
for i = 1, #arg do
  if arg[i] == '--models' then only = {} for m in arg[i + 1]:gmatch('[^,]+') do only[m] = true end end
  if arg[i] == '--profile' then profile('resnet20', {128, 3, 32, 32}) return end
end

local rounds = 3
for i = 1, #arg do if arg[i] == '--rounds' then rounds = tonumber(arg[i + 1]) end end

local function median(xs)
  local t = {}
  for i, v in ipairs(xs) do t[i] = v end
  table.sort(t)
  local n = #t
  if n == 0 then return nil end
  return n % 2 == 1 and t[(n + 1) / 2] or (t[n / 2] + t[n / 2 + 1]) / 2
end

print(string.format('machine: %s, %d threads; %d training and %d inference iterations; %d rounds, each running ' ..
                    'crlab, PyTorch NCHW and PyTorch channels_last one after the other; medians, with the range ' ..
                    'of the crlab / better-PyTorch ratio over the rounds', cpu_name(), threads, iters, iters * 3, rounds))
print(string.format('%-18s %5s %-9s %9s %9s %9s %7s  %s', 'model', 'batch', 'pass', 'crlab', 'pt NCHW', 'pt NHWC', 'ratio',
                    'range'))
local torch_version
for _, cfg in ipairs(configs) do
  if only == nil or only[cfg[1]] then
    local r = {train = {{}, {}, {}, {}}, inference = {{}, {}, {}, {}}}
    for _ = 1, rounds do
      local tr, inf = measure(cfg[1], cfg[2])
      local pn = torch_measure(cfg[1], cfg[2][1], 'nchw')
      local pc = pn and torch_measure(cfg[1], cfg[2][1], 'channels_last')
      torch_version = pn and pn.torch or torch_version
      for pass, vals in pairs({train = {tr, pn and pn.train_ips, pc and pc.train_ips},
                               inference = {inf, pn and pn.infer_ips, pc and pc.infer_ips}}) do
        local q = r[pass]
        q[1][#q[1] + 1] = vals[1]
        if vals[2] then q[2][#q[2] + 1] = vals[2] end
        if vals[3] then q[3][#q[3] + 1] = vals[3] end
        if vals[2] or vals[3] then q[4][#q[4] + 1] = vals[1] / math.max(vals[2] or 0, vals[3] or 0) end
      end
    end
    for _, pass in ipairs({'train', 'inference'}) do
      local q = r[pass]
      local c, a, b = median(q[1]), median(q[2]), median(q[3])
      local best = (a or b) and math.max(a or 0, b or 0)
      local lo, hi = math.huge, -math.huge
      for _, v in ipairs(q[4]) do lo, hi = math.min(lo, v), math.max(hi, v) end
      print(string.format('%-18s %5d %-9s %9.0f %9s %9s %7s  %s', cfg[1], cfg[2][1], pass, c,
                          a and string.format('%.0f', a) or 'n/a', b and string.format('%.0f', b) or 'n/a',
                          best and string.format('%.2fx', c / best) or 'n/a',
                          #q[4] > 0 and string.format('%.2f-%.2f', lo, hi) or ''))
    end
    io.stdout:flush()
  end
end
print('(images/s; PyTorch ' .. (torch_version or 'not installed') .. ')')
