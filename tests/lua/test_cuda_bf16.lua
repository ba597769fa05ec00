-- bf16 mixed precision on the device (crlab.cuda.bf16, trainer --precision
-- bf16): convolutions and GEMMs on bf16 copies of their operands against
-- the CPU's float32, with tolerances for bf16 (8 significant bits: each
-- operand rounds by up to 2^-8 relative, so products carry ~0.5% noise;
-- rtol 2e-2 of the largest value), plus exact checks that the switch
-- really takes the bf16 path (1 + 2^-10 rounds to 1 in bf16 and not in
-- float32 or TF32). With the CPU standing in (CRLAB_TEST_DEVICE=cpu) the
-- switch is not touched (it is a GPU switch) and float32 meets float32.
-- The rounding rule itself is tested on the CPU by tests/c/test_bf16.c.
local t = require 'tap'
local crlab = require 'crlab'
local nn = require 'crlab.nn'
local models = require 'crlab.models'
local optim = require 'crlab.optim'
local D = require 'devcheck'

local RTOL = 2e-2

-- runs fn with bf16 on (on a real device), switching it off again even when
-- fn raises
local function with_bf16(fn)
  if not D.stand_in then crlab.cuda.bf16(true) end
  local ok, err = pcall(fn)
  if not D.stand_in then crlab.cuda.bf16(false) end
  if not ok then error(err, 0) end
end

-- the switch itself, where the plugin loads (it does without a GPU)
local loads = crlab.cuda.compiled() and pcall(crlab.cuda.bf16)
if loads then
  t.eq(crlab.cuda.bf16(), false, 'bf16 is off by default')
  crlab.cuda.bf16(true)
  t.eq(crlab.cuda.bf16(), true, 'bf16(true) switches it on')
  crlab.cuda.bf16(false)
  t.eq(crlab.cuda.bf16(), false, 'bf16(false) switches it off')
  t.errors(function() crlab.cuda.bf16('yes') end, 'expects true or false', 'bf16 takes a boolean')
  local core = require 'crlab.core'
  t.errors(function() core.check(core.C.crl_cuda_set_option(core.C.CRL_CUDA_BF16, 2)) end, 'BF16 must be 0 or 1',
           'the option takes 0 or 1')
  t.errors(function() core.check(core.C.crl_cuda_set_option(5, 1)) end, 'unknown option 5 (0..4)',
           'the option after BF16 is unknown')
else
  t.skip('the bf16 switch needs the CUDA plugin')
end

local V = 1 + 2 ^ -10 -- not a bf16 value: rounds to 1 (it is one in float32 and in TF32)

local function conv_case(name, cin, cout, h, w, k, opts)
  return function()
    with_bf16(function()
      local cpu, dev = D.pair(11, function() return nn.Conv2d(cin, cout, k, opts) end)
      if cpu.bias then
        cpu.bias:uniform(-1, 1)
        dev.bias:copy(D.to(cpu.bias))
      end
      local x = crlab.randn(3, cin, h, w)
      local dx = D.to(x)
      local y = cpu:forward(x)
      D.close(t, dev:forward(dx), y, name .. ': forward', RTOL)
      local g = crlab.randn(y:size())
      local dg = D.to(g)
      D.close(t, dev:backward(dx, dg), cpu:backward(x, g), name .. ': grad in', RTOL)
      D.close(t, dev.gradWeight, cpu.gradWeight, name .. ': grad weight', RTOL)
      if cpu.bias then D.close(t, dev.gradBias, cpu.gradBias, name .. ': grad bias (float32)', 1e-4) end
      -- a second backward adds (in float32) to the parameter gradients
      dev:backward(dx, dg)
      cpu:backward(x, g)
      D.close(t, dev.gradWeight, cpu.gradWeight, name .. ': grad weight accumulates', RTOL)
      if not D.stand_in then
        t.ok(dev:describe():find('bf16', 1, true) ~= nil, name .. ': the plan says ' .. dev:describe())
      end
    end)
  end
end

D.run(t, {
  {'conv bf16: 3x3 pad 1, bias', conv_case('3x3 pad 1, bias', 5, 7, 9, 11, 3, {padding = 1})},
  {'conv bf16: 3x3 stride 2, no bias, odd H/W', conv_case('3x3 stride 2, no bias', 4, 6, 13, 9, 3,
                                                          {padding = 1, stride = 2, bias = false})},
  {'conv bf16: 1x1', conv_case('1x1', 16, 8, 7, 7, 1, {})},
  {'conv bf16: groups 2', conv_case('groups 2', 6, 4, 8, 9, 3, {padding = 1, groups = 2})},

  {'conv bf16 rounds its operands, and off means float32 again', function()
    local cpu, dev = D.pair(3, function() return nn.Conv2d(8, 2, 1, {bias = false}) end)
    cpu.weight:fill(1)
    dev.weight:fill(1)
    local x = crlab.zeros(2, 8, 3, 5):fill(V)
    local dx = D.to(x)
    with_bf16(function()
      local y = D.host(dev:forward(dx))
      if D.stand_in then
        t.close(y:max(), 8 * V, 1e-6, 'stand-in: float32 sum of 8 x (1 + 2^-10)')
      else
        t.ok(y:min() == 8 and y:max() == 8, 'bf16: 8 x round(1 + 2^-10) = 8 exactly (got ' .. y:max() .. ')')
      end
    end)
    local y = D.host(dev:forward(dx))
    t.close(y:max(), 8 * V, 1e-6, 'bf16 off: 8 x (1 + 2^-10) in float32 (got ' .. y:max() .. ')')
    t.close(y:min(), 8 * V, 1e-6, 'and everywhere')
  end},

  {'mm and gemm bf16', function()
    with_bf16(function()
      local a, b = crlab.randn(37, 65), crlab.randn(65, 29)
      D.close(t, D.to(a):mm(D.to(b)), a:mm(b), '(37, 65) x (65, 29)', RTOL)
      D.close(t, D.to(b):t():mm(D.to(a):t()), b:t():mm(a:t()), 'transposed views', RTOL)
      D.close(t, D.to(a):narrow(2, 2, 30):mm(D.to(b):narrow(1, 5, 30)), a:narrow(2, 2, 30):mm(b:narrow(1, 5, 30)),
              'narrowed views (leading dimension > columns)', RTOL)
      local C = crlab.C
      for ta = 0, 1 do
        for tb = 0, 1 do
          local A = ta == 1 and crlab.randn(65, 37) or crlab.randn(37, 65)
          local B = tb == 1 and crlab.randn(29, 65) or crlab.randn(65, 29)
          local c = crlab.randn(37, 29)
          local gc = D.to(c)
          assert(C.crl_tensor_gemm(c, A, B, ta, tb, 0.5, 0.75) == 0)
          assert(C.crl_tensor_gemm(gc, D.to(A), D.to(B), ta, tb, 0.5, 0.75) == 0)
          -- beta * C stays float32: only the product carries bf16 noise
          D.close(t, gc, c, ('transpose_a %d, transpose_b %d, alpha 0.5, beta 0.75'):format(ta, tb), RTOL)
        end
      end
    end)
  end},

  {'mm bf16 rounds its operands, and off means float32 again', function()
    local a, b = crlab.zeros(4, 8):fill(V), crlab.ones(8, 3)
    local da, db = D.to(a), D.to(b)
    with_bf16(function()
      local y = D.host(da:mm(db))
      if D.stand_in then
        t.close(y:max(), 8 * V, 1e-6, 'stand-in: float32 sum of 8 x (1 + 2^-10)')
      else
        t.ok(y:min() == 8 and y:max() == 8, 'bf16: 8 x round(1 + 2^-10) = 8 exactly (got ' .. y:max() .. ')')
      end
      -- beta keeps its meaning: out = 1 * a b + 1 * out, out float32
      local out = D.to(crlab.zeros(4, 3):fill(V))
      assert(crlab.C.crl_tensor_gemm(out, da, db, 0, 0, 1, 1) == 0)
      local o = D.host(out)
      t.close(o:max(), (D.stand_in and 8 * V or 8) + V, 1e-6, 'beta 1 adds to the float32 out unrounded')
    end)
    local y = D.host(da:mm(db))
    t.close(y:max(), 8 * V, 1e-6, 'bf16 off: float32 again (got ' .. y:max() .. ')')
  end},

  {'nn.Linear bf16 forward and backward', function()
    with_bf16(function()
      for _, bias in ipairs({true, false}) do
        local tag = bias and '' or ', without bias'
        local cpu, dev = D.pair(5, function() return nn.Linear(65, 29, {bias = bias}) end)
        local x, gy = crlab.randn(3, 65), crlab.randn(3, 29)
        local gx, ggy = D.to(x), D.to(gy)
        D.close(t, dev:forward(gx), cpu:forward(x), 'forward' .. tag, RTOL)
        cpu:zeroGradParameters()
        dev:zeroGradParameters()
        for round = 1, 2 do -- the second round checks what accumulates
          D.close(t, dev:backward(gx, ggy), cpu:backward(x, gy), 'grad_in, round ' .. round .. tag, RTOL)
          D.close(t, dev.gradWeight, cpu.gradWeight, 'grad_weight, round ' .. round .. tag, RTOL)
          if bias then D.close(t, dev.gradBias, cpu.gradBias, 'grad_bias (float32), round ' .. round .. tag) end
        end
      end
    end)
  end},

  {'resnet20 bf16: one training step against the CPU in float32', function()
    with_bf16(function()
      local a, b = D.pair(20, function()
        return models.build('resnet20', {channels = 3, classes = 10, size = 32}):skipInputGradient()
      end)
      local function setup(model)
        local p, g, ranges = model:getParameters()
        local opt = optim.sgd(p, g, {momentum = 0.9, nesterov = true, weightDecay = 5e-4, noDecay = {'bn', 'bias'}},
                              ranges)
        return {model = model, params = p, grads = g, opt = opt, crit = crlab.loss.crl{alpha = 1.5, beta = 1}}
      end
      local ca, cb = setup(a), setup(b)
      crlab.manualSeed(5)
      local x = crlab.randn(8, 3, 32, 32)
      local y = crlab.randperm(8)
      for i = 1, 8 do y[i] = y[i] % 10 end
      local xd, yd = D.to(x), D.to(y)
      local outa, outb = a:forward(x), b:forward(xd)
      D.close(t, outb, outa, 'logits (8x10)', 5e-2)
      local la, lb = ca.crit:forward(outa, y), cb.crit:forward(outb, yd)
      local mode = D.stand_in and 'stand-in' or 'bf16'
      t.close(lb, la, RTOL, ('the loss: %.5f in %s, %.5f in float32 on the CPU'):format(lb, mode, la), RTOL)
      for _, s in ipairs({{ca, x, y}, {cb, xd, yd}}) do
        local c = s[1]
        c.grads:zero()
        c.model:backward(s[2], c.crit:backward(c.model:forward(s[2]), s[3]))
        c.opt:step(0.1)
      end
      -- estimates for bf16 through 20 layers, not measured on a GPU: the
      -- gradients carry the operands' rounding noise, the weights only lr
      -- times that
      D.close(t, cb.grads, ca.grads, 'gradient slab (' .. ca.grads:numel() .. ' values)', 5e-2)
      D.close(t, cb.params, ca.params, 'weights after the SGD step', 1e-2)
      local after_a, after_b = ca.crit:forward(a:forward(x), y), cb.crit:forward(b:forward(xd), yd)
      t.close(after_b, after_a, RTOL, ('the loss after the step: %.5f in %s, %.5f on the CPU'):format(after_b, mode,
              after_a), RTOL)
    end)
  end},
})

t.done()
