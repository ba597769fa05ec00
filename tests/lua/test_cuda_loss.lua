-- The CUDA backend's losses, optimiser steps, batch statistics and dropout
-- against the CPU's: every loss kind and reduction on odd shapes and large
-- logits (forward value, per-example losses, forwardTensor, backward),
-- SGD and Adam over a slab for several steps, the statistics of tied and
-- confident batches, dropout's mask for the same generator state, and the
-- errors (labels out of range, wrong dtypes, mixed devices). See
-- devcheck.lua for the harness.
local t = require 'tap'
local ffi = require 'ffi'
local crlab = require 'crlab'
local T = require 'crlab.tensor'
local metrics = require 'crlab.metrics'
local optim = require 'crlab.optim'
local D = require 'devcheck'
local C = crlab.C

local DEVICE = D.stand_in and C.CRL_CPU or C.CRL_CUDA

-- labels 0..k-1 spread over the rows
local function labels(n, k)
  local y = {}
  for i = 1, n do y[i] = (i * 7 + 3) % k end
  return crlab.tensor(y, 'int32')
end

-- logits (N, K): random, and with `large` some entries pushed to +-80 (the
-- label's logit far above or below the rest: p_y -> 1 and p_y -> 0)
local function logits(n, k, large)
  local z = crlab.randn(n, k)
  if large then
    z:mul_(20)
    for i = 1, n, 3 do z[i][(i % k) + 1] = 80 end
    for i = 2, n, 5 do z[i][((i + 1) % k) + 1] = -80 end
  end
  return z
end

local kinds = {
  {'ce', {}}, {'ce', {smoothing = 0.1}}, {'nllr', {}}, {'crl', {alpha = 1.5, beta = 1}},
  {'crl', {alpha = 0, beta = 2}}, {'focal', {gamma = 2}}, {'focal', {gamma = 0.5}},
}

local function opts_with(o, red)
  local r = {reduction = red}
  for k, v in pairs(o) do r[k] = v end
  return r
end

local function loss_cases(n, k, large)
  local tag = ('N=%d K=%d%s'):format(n, k, large and ' logits +-80' or '')
  return {('losses, ' .. tag), function()
    local z, y = logits(n, k, large), labels(n, k)
    local zd, yd = D.to(z), D.to(y)
    for _, kind in ipairs(kinds) do
      local name, o = kind[1], kind[2]
      local label = name .. (o.smoothing and ' smoothing' or '') .. (o.alpha and (' alpha ' .. o.alpha) or '') ..
                    (o.gamma and (' gamma ' .. o.gamma) or '') .. ', ' .. tag
      for _, red in ipairs({'mean', 'sum', 'none'}) do
        if not (k < 2 and (name == 'nllr' or name == 'crl')) then
          local cpu = crlab.loss.byName(name, opts_with(o, red))
          local dev = crlab.loss.byName(name, opts_with(o, red))
          local want, got = cpu:forward(z, y), dev:forward(zd, yd)
          if red == 'none' then
            D.close(t, got, want, label .. ', none: per-example losses', 1e-5)
          else
            D.close(t, got, want, label .. ', ' .. red .. ': value', 1e-6)
          end
          local wv, wper = cpu:forwardTensor(z, y)
          local gv, gper = dev:forwardTensor(zd, yd)
          D.close(t, gv, wv, label .. ', ' .. red .. ': forwardTensor value (a device tensor)', 1e-5)
          D.close(t, gper, wper, label .. ', ' .. red .. ': forwardTensor per-example', 1e-5)
          D.close(t, dev:backward(zd, yd), cpu:backward(z, y), label .. ', ' .. red .. ': gradient', 1e-5)
          -- an upstream gradient: a number (mean, sum) or an (N) tensor (none)
          local go = red == 'none' and (crlab.randn(n) + 1) or 0.75
          local god = red == 'none' and D.to(go) or go
          D.close(t, dev:backward(zd, yd, god), cpu:backward(z, y, go),
                  label .. ', ' .. red .. ': gradient with grad_output', 1e-5)
        end
      end
    end
  end}
end

local cases = {
  loss_cases(37, 10, false),
  loss_cases(37, 10, true),
  loss_cases(37, 2, false),
  loss_cases(37, 2, true),
  loss_cases(3, 65, false),
  {'losses on non-contiguous logits and an empty batch', function()
    local zt, y = crlab.randn(10, 37), labels(37, 10) -- (K, N), viewed as (N, K)
    local z, zd = zt:t(), D.to(zt):t()
    local cpu, dev = crlab.loss.crl{reduction = 'none'}, crlab.loss.crl{reduction = 'none'}
    D.close(t, dev:forward(zd, D.to(y)), cpu:forward(z, y), 'transposed logits: per-example CRL', 1e-5)
    D.close(t, dev:backward(zd, D.to(y)), cpu:backward(z, y), 'transposed logits: CRL gradient', 1e-5)
    local ce = crlab.loss.ce{reduction = 'sum'}
    local ze, ye = crlab.zeros(0, 4), crlab.tensor({}, 'int32')
    t.close(ce:forward(D.to(ze), D.to(ye)), 0, 0, 'an empty batch sums to 0', 0)
    local m = crlab.loss.ce()
    local v = m:forward(D.to(ze), D.to(ye))
    t.ok(v ~= v, 'an empty batch has a NaN mean, as on the CPU')
  end},

  {'SGD and Adam over a slab, three steps', function()
    local n = 1037
    local ranges = {{tag = 'weight', offset = 0, count = 900}, {tag = 'bias', offset = 900, count = 137}}
    local configs = {
      {'sgd plain', optim.sgd, {}},
      {'sgd momentum + dampening', optim.sgd, {momentum = 0.9, dampening = 0.1}},
      {'sgd Nesterov + weight decay', optim.sgd, {momentum = 0.9, nesterov = true, weightDecay = 5e-2,
                                                  noDecay = {'bias'}}},
      {'sgd momentum + weight decay', optim.sgd, {momentum = 0.5, weightDecay = 1e-2}},
      {'adam', optim.adam, {}},
      {'adam + weight decay', optim.adam, {weightDecay = 1e-2, noDecay = {'bias'}}},
      {'adamw + weight decay', optim.adamw, {weightDecay = 1e-1, noDecay = {'bias'}}},
    }
    for _, cfg in ipairs(configs) do
      local p0 = crlab.randn(n)
      local p, g = p0:clone(), crlab.zeros(n)
      local pd, gd = D.to(p0), D.to(crlab.zeros(n))
      local oc = cfg[2](p, g, cfg[3], ranges)
      local od = cfg[2](pd, gd, cfg[3], ranges)
      for step = 1, 3 do
        local gs = crlab.randn(n)
        g:copy(gs)
        gd:copy(D.to(gs))
        local lr = 0.1 / step
        oc:step(lr)
        od:step(lr)
      end
      D.close(t, pd, p, cfg[1] .. ': parameters after 3 steps', 1e-5)
      if oc.buf then D.close(t, od.buf, oc.buf, cfg[1] .. ': momentum buffer', 1e-5) end
      if oc.m then
        D.close(t, od.m, oc.m, cfg[1] .. ': first moment', 1e-5)
        D.close(t, od.v, oc.v, cfg[1] .. ': second moment', 1e-5)
      end
    end
  end},

  {'gradient clipping: the squared norm and the scaling', function()
    for _, n in ipairs({1, 1037, 300001}) do
      local g = crlab.randn(n)
      local gd = D.to(g)
      local want, got = optim.clipGradNorm(g, 0.5), optim.clipGradNorm(gd, 0.5)
      D.close(t, got, want, n .. ' elements: the norm before clipping', 1e-9)
      D.close(t, gd, g, n .. ' elements: the clipped gradients', 1e-6)
    end
  end},

  {'batch statistics', function()
    for _, k in ipairs({10, 4, 2}) do
      local mc, md = metrics.new{bins = 15}, metrics.new{bins = 15}
      local crit = crlab.loss.crl{reduction = 'none'}
      for b = 1, 4 do
        local n = 30 + b
        local z = (crlab.randn(n, k) * 2):floor():div(2):clamp(-2, 2) -- many exact ties
        if b == 2 then for i = 1, n, 4 do z[i][(i % k) + 1] = 40 end end -- confidence exactly 1
        local y = labels(n, k)
        local per = crit:forward(z, y):clone()
        if b == 3 then per[2] = 0 / 0 end -- a NaN loss: batch 3 is the first NaN batch
        mc:add(z, y, per)
        md:add(D.to(z), D.to(y), D.to(per))
      end
      mc:add(crlab.zeros(0, k), crlab.tensor({}, 'int32'))
      md:add(D.to(crlab.zeros(0, k)), D.to(crlab.tensor({}, 'int32')))
      local sc, sd = mc:summary(), md:summary()
      t.ok(sd.n == sc.n and sd.batches == sc.batches and sd.acc == sc.acc and sd.top5 == sc.top5 and
           sd.nanBatch == sc.nanBatch and sd.nanBatch == 3,
           ('K = %d: examples, batches, top-1, top-k and the NaN batch as on the CPU'):format(k))
      t.ok(sd.loss ~= sd.loss and sc.loss ~= sc.loss, ('K = %d: the mean loss is NaN on both'):format(k))
      t.close(sd.ece, sc.ece, 1e-6, ('K = %d: ECE as on the CPU'):format(k), 1e-7)
      local bc, bd = mc:bins(), md:bins()
      local same = #bc == #bd
      for i = 1, #bc do
        same = same and bc[i].count == bd[i].count and
               (bc[i].count == 0 or math.abs(bc[i].confidence - bd[i].confidence) < 1e-6)
      end
      t.ok(same, ('K = %d: per-bin counts and confidences as on the CPU'):format(k))
      md:reset()
      t.eq(md:summary().n, 0, ('K = %d: reset empties the device statistics'):format(k))
    end
  end},

  {'dropout draws the CPU mask from the same generator state', function()
    for _, size in ipairs({{37, 65}, {3, 5}, {1}}) do
      local x = crlab.randn(table.unpack and table.unpack(size) or unpack(size))
      local xd = D.to(x)
      local out, mask = T.new(C.CRL_FLOAT32, C.CRL_CPU, {0}), T.new(C.CRL_FLOAT32, C.CRL_CPU, {0})
      local outd, maskd = T.new(C.CRL_FLOAT32, DEVICE, {0}), T.new(C.CRL_FLOAT32, DEVICE, {0})
      crlab.manualSeed(123)
      crlab.rand(5) -- a generator that has moved on
      local start = crlab.getRNGState()
      for _, p in ipairs({0.3, 0.5}) do
        assert(C.crl_dropout_forward(out, mask, x, p, nil) == 0)
      end
      local after_cpu = crlab.getRNGState()
      crlab.setRNGState(start)
      for _, p in ipairs({0.3, 0.5}) do
        assert(C.crl_dropout_forward(outd, maskd, xd, p, nil) == 0)
      end
      local after_dev = crlab.getRNGState()
      local name = table.concat(size, 'x')
      D.close(t, maskd, mask, name .. ': the same mask, bit for bit', 0)
      D.close(t, outd, out, name .. ': the same output', 0)
      t.ok(after_cpu[1] == after_dev[1] and after_cpu[2] == after_dev[2],
           name .. ': the generator advances as on the CPU')
      -- in place (out is in)
      crlab.setRNGState(start)
      local xi = D.to(x)
      assert(C.crl_dropout_forward(xi, maskd, xi, 0.3, nil) == 0)
      crlab.setRNGState(start)
      local xc = x:clone()
      assert(C.crl_dropout_forward(xc, mask, xc, 0.3, nil) == 0)
      D.close(t, xi, xc, name .. ': in place as on the CPU', 0)
    end
  end},

  {'errors', function()
    local z, y = crlab.randn(5, 10), crlab.tensor({1, 2, 3, 10, 4}, 'int32')
    local zd, yd = D.to(z), D.to(y)
    local msg = 'label 10 of example 3 (0-based) is outside [0, 10) for logits (5, 10)'
    local ce = crlab.loss.ce()
    t.errors(function() return ce:forward(zd, yd) end, msg, 'forward: a label out of range, as on the CPU')
    -- forwardTensor and backward do not read back on the GPU: the error
    -- comes at the call on the CPU, at the next read on the GPU
    for _, what in ipairs({'forwardTensor', 'backward'}) do
      local ok, err = pcall(function() return ce[what](ce, zd, yd) end)
      if ok then
        ok, err = pcall(function() return ce:forward(zd, D.to(crlab.tensor({1, 2, 3, 4, 5}, 'int32'))) end)
      end
      t.ok(not ok and tostring(err):find(msg, 1, true) ~= nil,
           what .. ': a label out of range is reported (at the call or the next read): ' .. tostring(err))
    end
    local m = metrics.new{bins = 10}
    local ok, err = pcall(function() m:add(zd, yd) end)
    if ok then ok, err = pcall(function() return m:summary() end) end
    t.ok(not ok and tostring(err):find(msg, 1, true) ~= nil,
         'batch statistics: a label out of range is reported: ' .. tostring(err))
    t.eq(m:summary().batches, 0, 'and the batch was not added')
    local zn = z:clone()
    zn[2][3] = 0 / 0
    ok, err = pcall(function() m:add(D.to(zn), D.to(crlab.tensor({1, 2, 3, 4, 5}, 'int32'))) end)
    if ok then ok, err = pcall(function() return m:summary() end) end
    t.ok(not ok and tostring(err):find('the confidence of example 1 (0-based) is nan', 1, true) ~= nil,
         'batch statistics: a NaN logit is reported: ' .. tostring(err))
    t.eq(m:summary().batches, 0, 'and the batch was not added')
    t.errors(function() return ce:forward(zd, D.to(crlab.tensor{1, 2, 3, 4, 5})) end,
             'labels must be an int32 (N) vector, got float32 (5)', 'float labels: the CPU message')
    t.errors(function() return ce:forward(D.to(crlab.randn(5)), yd) end,
             'logits must be a float32 (N, K) matrix', '1-d logits: the CPU message')
    t.errors(function() return crlab.loss.ce{reduction = 'none'}:backward(zd, D.to(labels(5, 10)), D.to(crlab.ones(4))) end,
             "grad_output (4) must hold 5 element(s) for reduction 'none'", 'a grad_output of the wrong length')
    local p, g = D.to(crlab.randn(8)), D.to(crlab.randn(7))
    t.errors(function() optim.sgd(p, g):step(0.1) end,
             "'grads' (7) must be a contiguous float32 tensor of 8 elements", 'sgd: a slab of the wrong size')
    t.errors(function() optim.adam(p, D.to(crlab.randn(8))):step(-1) end, 'need lr >= 0', 'adam: a negative rate')
    if D.stand_in then
      t.skip('mixed devices: needs a CUDA device')
    else
      t.errors(function() return ce:forward(zd, crlab.tensor({1, 2, 3, 4, 5}, 'int32')) end,
               "'logits' (5, 10) is on the CUDA and 'labels' (5) on the CPU", 'mixed devices are refused')
      t.errors(function() optim.sgd(p, crlab.randn(8)):step(0.1) end, 'on the CPU', 'sgd: mixed devices')
    end
  end},
}

crlab.manualSeed(17)
D.run(t, cases)
t.done()
