-- Whole training on the device against the CPU from the same seed: one
-- ResNet-20 step (logits, CRL loss, gradient slab, weights, running
-- statistics after an SGD step), twenty steps of the 'cnn' model with
-- matching losses, a checkpoint written from the device evaluated on the
-- CPU, and no new device allocations once a training loop is warm. See
-- devcheck.lua for the harness.
--
-- TF32 is switched off for the comparisons (fp32 convolutions and GEMMs on
-- tensor cores round their inputs to 10 mantissa bits, which would need a
-- tolerance of ~1e-2); what remains is the order of summation, hence the
-- 1e-3 tolerances on the backward pass and over many steps.
local t = require 'tap'
local crlab = require 'crlab'
local models = require 'crlab.models'
local optim = require 'crlab.optim'
local metrics = require 'crlab.metrics'
local ckpt = require 'crlab.checkpoint'
local train = require 'crlab.train'
local data = require 'crlab.data'
local Tr = require 'crlab.transforms'
local D = require 'devcheck'

-- the labels of n examples over K classes, from the seeded generator
local function labels(n, K)
  local y = crlab.randperm(n)
  for i = 1, n do y[i] = y[i] % K end
  return y
end

-- model, its slabs and an SGD optimiser over them (the slabs are made after
-- the move, as the trainer does, so the optimiser's state is on the device)
local function setup(model)
  local p, g, ranges = model:getParameters()
  local opt = optim.sgd(p, g, {momentum = 0.9, nesterov = true, weightDecay = 5e-4, noDecay = {'bn', 'bias'}},
                        ranges)
  return {model = model, params = p, grads = g, opt = opt, crit = crlab.loss.crl{alpha = 1.5, beta = 1}}
end

-- one training step as the trainer takes it; returns the logits and the
-- loss as a one-element tensor (nothing read back)
local function step(s, x, y, lr, stats)
  local out = s.model:forward(x)
  local value, per = s.crit:forwardTensor(out, y)
  if stats then stats:add(out, y, per) end
  s.grads:zero()
  s.model:backward(x, s.crit:backward(out, y))
  s.opt:step(lr)
  return out, value
end

local tf32
if not D.stand_in and D.available() then
  tf32 = crlab.cuda.allowTF32()
  crlab.cuda.allowTF32(false)
end

D.run(t, {
  {'resnet20: one training step (forward, CRL, backward, SGD)', function()
    local a, b = D.pair(20, function()
      return models.build('resnet20', {channels = 3, classes = 10, size = 32}):skipInputGradient()
    end)
    local ca, cb = setup(a), setup(b)
    t.eq(cb.params.device, D.stand_in and crlab.C.CRL_CPU or crlab.C.CRL_CUDA,
         'the parameter slab is on the device after model:cuda()')
    if not D.stand_in then
      t.eq(cb.opt.buf.device, crlab.C.CRL_CUDA, 'and so is the momentum buffer')
    end
    crlab.manualSeed(5)
    local x, y = crlab.randn(6, 3, 32, 32), labels(6, 10)
    local xd, yd = D.to(x), D.to(y)
    local outa = a:forward(x)
    local outb = b:forward(xd)
    D.close(t, outb, outa, 'logits (6x10)', 1e-4)
    local la, lb = ca.crit:forward(outa, y), cb.crit:forward(outb, yd)
    t.close(lb, la, 1e-4, 'CRL loss ' .. la)
    local _, va = step(ca, x, y, 0.1)
    local _, vb = step(cb, xd, yd, 0.1)
    D.close(t, vb, va, 'the loss of the step, as a tensor', 1e-4)
    D.close(t, cb.grads, ca.grads, 'gradient slab (' .. ca.grads:numel() .. ' values)', 1e-3)
    D.close(t, cb.params, ca.params, 'weights after the SGD step', 1e-4)
    D.close(t, cb.opt.buf, ca.opt.buf, 'momentum buffer after the step', 1e-3)
    local ba, bb = a:namedBuffers(), b:namedBuffers()
    local worst, name = 0, '-'
    for i = 1, #ba do
      local d = (D.host(bb[i][2]):float() - ba[i][2]:float()):abs():max() / (1 + ba[i][2]:float():abs():max())
      if d > worst then worst, name = d, ba[i][1] end
    end
    t.ok(#ba == #bb and #ba > 0 and worst <= 1e-4,
         string.format('%d running statistics match (worst relative difference %.2g, %s)', #ba, worst, name))
  end},

  {'cnn: 20 steps from the same seed give the same losses', function()
    local a, b = D.pair(7, function()
      return models.build('cnn', {channels = 1, classes = 10, size = 28}):skipInputGradient()
    end)
    local ca, cb = setup(a), setup(b)
    crlab.manualSeed(8)
    local xs, ys = {}, {}
    for i = 1, 20 do xs[i], ys[i] = crlab.randn(8, 1, 28, 28), labels(8, 10) end
    local sa, sb = metrics.new{bins = 15}, metrics.new{bins = 15}
    local up = train.uploader(D.stand_in and 'cpu' or 'cuda')
    local worst, at = 0, 0
    local la, lb = {}, {}
    for i = 1, 20 do
      local _, va = step(ca, xs[i], ys[i], 0.05, sa)
      local _, vb = step(cb, up('x', xs[i]), up('y', ys[i]), 0.05, sb)
      la[i], lb[i] = va[1], D.host(vb)[1]
      local d = math.abs(lb[i] - la[i]) / (1 + math.abs(la[i]))
      if d > worst then worst, at = d, i end
    end
    t.ok(worst <= 1e-3, string.format('losses over 20 steps agree (%.4f -> %.4f on the CPU; worst relative ' ..
                                      'difference %.2g at step %d)', la[1], la[20], worst, at))
    t.ok(la[20] < la[1], 'and the loss went down')
    D.close(t, cb.params, ca.params, 'weights after 20 steps', 1e-3)
    local ma, mb = sa:summary(), sb:summary()
    t.eq(mb.n, ma.n, 'the summed statistics count the same examples (' .. ma.n .. ')')
    t.close(mb.loss, ma.loss, 1e-3, 'and the same mean loss')
    t.close(mb.acc, ma.acc, 0, 'and the same training accuracy', 1 / ma.n + 1e-9)
  end},

  {'a checkpoint written from the device evaluates the same on the CPU', function()
    local _, b = D.pair(9, function()
      return models.build('cnn', {channels = 1, classes = 10, size = 28}):skipInputGradient()
    end)
    local cb = setup(b)
    crlab.manualSeed(10)
    for _ = 1, 3 do step(cb, D.to(crlab.randn(8, 1, 28, 28)), D.to(labels(8, 10)), 0.05) end
    local path = os.tmpname()
    local list = {}
    for _, np in ipairs(b:namedParameters()) do list[#list + 1] = {'model.' .. np[1], np[2]} end
    for _, nb in ipairs(b:namedBuffers()) do list[#list + 1] = {'model.' .. nb[1], nb[2]} end
    ckpt.save(path, list, {format = train.FORMAT, model = 'cnn'})
    local tensors = ckpt.load(path)
    local host = true
    for _, n in ipairs(tensors.names) do host = host and tensors[n].device == crlab.C.CRL_CPU end
    t.ok(host and #tensors.names == #list, #list .. ' tensors read back, all on the host')
    -- a CPU model from another seed takes the weights
    crlab.manualSeed(99)
    local a = models.build('cnn', {channels = 1, classes = 10, size = 28})
    a:getParameters()
    train.load_into(path, a, nil, {model = 'cnn'})
    os.remove(path)
    local images = (crlab.rand(40, 1, 28, 28) * 255):byte()
    local L = data.loader({images = images, labels = labels(40, 10)},
                         {batch = 16, transform = Tr.compose{}, shuffle = false, threads = 1})
    local crit = crlab.loss.crl{}
    local ea = train.evaluate(a, crit, L)
    local eb = train.evaluate(b, crit, L, D.stand_in and 'cpu' or 'cuda')
    L:close()
    t.eq(ea.n, 40, 'the CPU copy evaluates 40 images')
    t.eq(eb.acc, ea.acc, string.format('the same accuracy on the device and on the CPU (%.3f)', ea.acc))
    t.close(eb.loss, ea.loss, 1e-4, 'the same loss')
    t.close(eb.ece, ea.ece, 1e-3, 'the same calibration error', 1e-4)
  end},

  {'no new device allocations once a training loop is warm', function()
    local _, b = D.pair(12, function()
      return models.build('resnet20', {channels = 3, classes = 10, size = 32}):skipInputGradient()
    end)
    local cb = setup(b)
    local stats = metrics.new{bins = 15}
    local up = train.uploader(D.stand_in and 'cpu' or 'cuda')
    crlab.manualSeed(13)
    local xs, ys = {}, {}
    for i = 1, 5 do xs[i], ys[i] = crlab.randn(4, 3, 32, 32), labels(4, 10) end
    -- device: the caching allocator's calls to cudaMalloc; stand-in: host storages
    local function count()
      if D.stand_in then return tonumber(crlab.C.crl_storage_allocations()) end
      return crlab.cuda.memory().device_mallocs
    end
    local before
    for i = 1, 5 do
      if i == 3 then before = count() end
      step(cb, up('x', xs[i]), up('y', ys[i]), 0.05, stats)
    end
    local grew = count() - before
    t.eq(grew, 0, 'steps 3-5 make no new ' .. (D.stand_in and 'storage' or 'device allocations (device_mallocs)'))
    if not D.stand_in then
      local m = crlab.cuda.memory()
      t.ok(m.allocated > 0 and m.allocated <= m.reserved, string.format('%.1f MiB allocated of %.1f MiB reserved',
                                                                        m.allocated / 2^20, m.reserved / 2^20))
    end
  end},
})

if tf32 ~= nil then crlab.cuda.allowTF32(tf32) end
t.done()
