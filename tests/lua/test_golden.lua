-- The training loop end to end against tests/ref/golden.txt: a small
-- conv-BN-ReLU-pool-linear network, fixed weights and batch, 6 steps of SGD
-- with momentum and weight decay, with CE and with CRL(1.5, 1); the numpy
-- reference (tests/ref/gen_golden.py) writes every layer out by hand in
-- float64. Losses and final weights must agree to float32 accuracy.
local t = require 'tap'
local crlab = require 'crlab'
local nn = require 'crlab.nn'
local optim = require 'crlab.optim'

local ref = {}
for line in io.lines((os.getenv('CRLAB_HOME') or '.') .. '/tests/ref/golden.txt') do
  local tag, rest = line:match('^(%S+) (.*)$')
  if tag and tag ~= '#' then
    local v = {}
    for num in rest:gmatch('%S+') do v[#v + 1] = tonumber(num) end
    ref[tag] = v
  end
end

local function fill(tensor, values)
  local flat = tensor:view(-1)
  assert(flat:numel() == #values, 'golden.txt size mismatch')
  for i = 1, #values do flat[i] = values[i] end
end

local x = crlab.zeros(6, 1, 4, 4)
fill(x, ref.x)
local y = crlab.tensor(ref.y, 'int32')

for _, kind in ipairs({'ce', 'crl'}) do
  local conv, bn, lin = nn.Conv2d(1, 3, 3, {padding = 1}), nn.BatchNorm2d(3), nn.Linear(12, 5)
  local model = nn.Sequential(conv, bn, nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), lin)
  local layers = {conv = conv, bn = bn, linear = lin}
  for name, m in pairs(layers) do
    fill(m.weight, ref['init.' .. name .. '.weight'])
    fill(m.bias, ref['init.' .. name .. '.bias'])
  end
  local params, grads = model:getParameters()
  local opt = optim.sgd(params, grads, {momentum = 0.9, weightDecay = 1e-3})
  local crit = kind == 'ce' and crlab.loss.ce() or crlab.loss.crl{alpha = 1.5, beta = 1}
  local worst = 0
  for step = 1, 6 do
    local out = model:forward(x)
    local l = crit:forward(out, y)
    worst = math.max(worst, math.abs(l - ref['losses.' .. kind][step]) / ref['losses.' .. kind][step])
    grads:zero()
    model:backward(x, crit:backward(out, y))
    opt:step(0.1)
  end
  t.ok(worst < 1e-5, string.format('%s: the losses of 6 SGD steps match the numpy reference (worst relative ' ..
                                   'error %.1e)', kind, worst))
  local werr = 0
  for name, m in pairs(layers) do
    for _, which in ipairs({'weight', 'bias'}) do
      local want = ref['final.' .. kind .. '.' .. name .. '.' .. which]
      local flat = m[which]:view(-1)
      for i = 1, #want do werr = math.max(werr, math.abs(flat[i] - want[i])) end
    end
  end
  t.ok(werr < 1e-5, string.format('%s: the weights after 6 steps match (max abs error %.1e)', kind, werr))
end
t.done()
