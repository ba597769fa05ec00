-- The CUDA backend's convolution (cuDNN) and batch normalisation against
-- the CPU's: through the modules (nn.Conv2d, nn.BatchNorm2d/1d) and through
-- a convolution plan directly; forward outputs, gradients (grad_in
-- overwritten, parameter gradients accumulated), running statistics, the
-- fused ReLU; bad inputs refused with the CPU's words. See devcheck.lua.
local t = require 'tap'
local ffi = require 'ffi'
local crlab = require 'crlab'
local nn = require 'crlab.nn'
local core = require 'crlab.core'
local D = require 'devcheck'
local C = crlab.C

-- fp32 comparisons: cuDNN's TF32 tensor cores off, except in the case that
-- turns them on with a tolerance to match
if not D.stand_in and D.available() then crlab.cuda.allowTF32(false) end

-- the message of a raised error, without the Lua position in front
local function message(fn)
  local ok, err = pcall(fn)
  if ok then return nil end
  return (tostring(err):gsub('^[^:]*:%d+: ', ''))
end

-- {name, C, F, H, W, k, opts}; batch 3, odd sizes
local shapes = {
  {'3x3 stride 1 pad 1, bias', 5, 7, 9, 11, 3, {padding = 1}},
  {'3x3 stride 2 pad 1, no bias, odd H/W', 4, 6, 13, 9, 3, {padding = 1, stride = 2, bias = false}},
  {'1x1, bias', 8, 5, 7, 7, 1, {}},
  {'groups 2', 6, 4, 8, 9, 3, {padding = 1, groups = 2}},
  {'depthwise (4 groups), no bias', 4, 4, 10, 7, 3, {padding = 1, groups = 4, bias = false}},
  {'dilation 2 pad 2', 5, 3, 11, 9, 3, {padding = 2, dilation = 2}},
  {'5x3 kernel stride 2 no padding', 3, 4, 13, 9, {5, 3}, {stride = 2}},
}

local function conv_case(name, cin, cout, h, w, k, opts, rtol)
  return function()
    local cpu, dev = D.pair(7, function() return nn.Conv2d(cin, cout, k, opts) end)
    if cpu.bias then
      cpu.bias:uniform(-1, 1)
      dev.bias:copy(D.to(cpu.bias))
    end
    local x = crlab.randn(3, cin, h, w)
    local dx = D.to(x)
    local y = cpu:forward(x)
    D.close(t, dev:forward(dx), y, name .. ': forward', rtol)
    local g = crlab.randn(y:size())
    local dg = D.to(g)
    D.close(t, dev:backward(dx, dg), cpu:backward(x, g), name .. ': grad in', rtol)
    D.close(t, dev.gradWeight, cpu.gradWeight, name .. ': grad weight', rtol)
    if cpu.bias then D.close(t, dev.gradBias, cpu.gradBias, name .. ': grad bias', rtol) end
    -- a second backward adds to the parameter gradients
    dev:backward(dx, dg)
    cpu:backward(x, g)
    D.close(t, dev.gradWeight, cpu.gradWeight, name .. ': grad weight accumulates', rtol)
    if cpu.bias then D.close(t, dev.gradBias, cpu.gradBias, name .. ': grad bias accumulates', rtol) end
    if not D.stand_in then
      t.ok(dev:describe():find('cudnn fwd', 1, true) ~= nil, name .. ': the plan says ' .. dev:describe())
    end
  end
end

local cases = {}
for _, sh in ipairs(shapes) do
  local name, cin, cout, h, w, k, o = unpack(sh)
  cases[#cases + 1] = {'conv ' .. name, conv_case(name, cin, cout, h, w, k, o)}
end

-- the switches: timed algorithm choice with deterministic algorithms only,
-- and TF32 allowed (looser tolerance: TF32 keeps 10 bits of mantissa)
cases[#cases + 1] = {'conv, benchmark + deterministic', function()
  if not D.stand_in then crlab.cuda.benchmark(true); crlab.cuda.deterministic(true) end
  local ok, err = pcall(conv_case('benchmark + deterministic 3x3', 6, 8, 12, 10, 3, {padding = 1}))
  if not D.stand_in then crlab.cuda.benchmark(false); crlab.cuda.deterministic(false) end
  if not ok then error(err, 0) end
end}
cases[#cases + 1] = {'conv, TF32 allowed', function()
  if not D.stand_in then crlab.cuda.allowTF32(true) end
  local ok, err = pcall(conv_case('TF32 3x3', 16, 16, 9, 9, 3, {padding = 1}, 1e-2))
  if not D.stand_in then crlab.cuda.allowTF32(false) end
  if not ok then error(err, 0) end
end}

-- a plan used directly: NULL gradients skipped, gradients one at a time
cases[#cases + 1] = {'conv plan directly', function()
  local p = ffi.new('crl_conv2d_params', 2, 1, 1, 0, 1, 1, 1, 0) -- stride 2x1, pad 1x0
  local pc = ffi.gc(C.crl_conv2d_plan_new(p, C.CRL_CONV_REFERENCE), C.crl_conv2d_plan_free)
  local pd = ffi.gc(C.crl_conv2d_plan_new(p, C.CRL_CONV_REFERENCE), C.crl_conv2d_plan_free)
  local x, wt, b = crlab.randn(3, 4, 11, 8), crlab.randn(5, 4, 3, 3), crlab.randn(5)
  local dx, dw, db = D.to(x), D.to(wt), D.to(b)
  local y, dy = crlab.tensor(0), D.to(crlab.tensor(0))
  core.check(C.crl_conv2d_plan_forward(pc, y, x, wt, b, 1))
  core.check(C.crl_conv2d_plan_forward(pd, dy, dx, dw, db, 1))
  D.close(t, dy, y, 'plan: forward with bias')
  local g = crlab.randn(y:size())
  local dg = D.to(g)
  local gx, dgx = crlab.tensor(0), D.to(crlab.tensor(0))
  core.check(C.crl_conv2d_plan_backward(pc, gx, nil, nil, g, x, wt))
  core.check(C.crl_conv2d_plan_backward(pd, dgx, nil, nil, dg, dx, dw))
  D.close(t, dgx, gx, 'plan: grad in alone')
  local gw, gb = crlab.ones(5, 4, 3, 3), crlab.ones(5)
  local dgw, dgb = D.to(gw), D.to(gb)
  core.check(C.crl_conv2d_plan_backward(pc, nil, gw, nil, g, x, wt))
  core.check(C.crl_conv2d_plan_backward(pd, nil, dgw, nil, dg, dx, dw))
  D.close(t, dgw, gw, 'plan: grad weight alone, added to ones')
  core.check(C.crl_conv2d_plan_backward(pc, nil, nil, gb, g, x, wt))
  core.check(C.crl_conv2d_plan_backward(pd, nil, nil, dgb, dg, dx, dw))
  D.close(t, dgb, gb, 'plan: grad bias alone, added to ones')
  -- a second input shape through the same plan (the per-shape cache)
  local x2 = crlab.randn(2, 4, 7, 6)
  local y2, dy2 = crlab.tensor(0), D.to(crlab.tensor(0))
  core.check(C.crl_conv2d_plan_forward(pc, y2, x2, wt, nil, 1))
  core.check(C.crl_conv2d_plan_forward(pd, dy2, D.to(x2), dw, nil, 1))
  D.close(t, dy2, y2, 'plan: another input shape, no bias')
end}

-- the plan-less calls (the reference API): dilation, bias, accumulation
cases[#cases + 1] = {'conv without a plan', function()
  local p = ffi.new('crl_conv2d_params', 1, 2, 2, 1, 2, 1, 1, 0) -- stride 1x2, pad 2x1, dilation 2x1
  local x, wt, b = crlab.randn(3, 3, 10, 9), crlab.randn(4, 3, 3, 3), crlab.randn(4)
  local dx, dw, db = D.to(x), D.to(wt), D.to(b)
  local y, dy = crlab.tensor(0), D.to(crlab.tensor(0))
  core.check(C.crl_conv2d_forward(y, x, wt, b, p, crlab.tensor(0)))
  core.check(C.crl_conv2d_forward(dy, dx, dw, db, p, crlab.tensor(0)))
  D.close(t, dy, y, 'plan-less: forward')
  local g = crlab.randn(y:size())
  local gx, gw, gb = crlab.tensor(0), crlab.ones(4, 3, 3, 3), crlab.ones(4)
  local dgx, dgw, dgb = D.to(crlab.tensor(0)), D.to(gw), D.to(gb)
  core.check(C.crl_conv2d_backward(gx, gw, gb, g, x, wt, p, crlab.tensor(0)))
  core.check(C.crl_conv2d_backward(dgx, dgw, dgb, D.to(g), dx, dw, p, crlab.tensor(0)))
  D.close(t, dgx, gx, 'plan-less: grad in')
  D.close(t, dgw, gw, 'plan-less: grad weight, added to ones')
  D.close(t, dgb, gb, 'plan-less: grad bias, added to ones')
  local pg = ffi.new('crl_conv2d_params', 1, 1, 1, 1, 1, 1, 2, 0)
  local x2, w2 = crlab.randn(2, 4, 5, 5), crlab.randn(4, 4, 3, 3)
  local want = message(function() core.check(C.crl_conv2d_forward(crlab.tensor(0), x2, w2, nil, pg, crlab.tensor(0))) end)
  local got = message(function()
    core.check(C.crl_conv2d_forward(D.to(crlab.tensor(0)), D.to(x2), D.to(w2), nil, pg, crlab.tensor(0)))
  end)
  t.ok(want ~= nil and want:find('groups', 1, true) ~= nil, 'plan-less: groups refused on the CPU: ' .. tostring(want))
  t.eq(got, want, 'plan-less: the same message on the device')
end}

cases[#cases + 1] = {'conv: bad inputs', function()
  local cpu, dev = D.pair(3, function() return nn.Conv2d(4, 6, 3, {padding = 1}) end)
  local x = crlab.randn(2, 5, 6, 6)
  local want = message(function() cpu:forward(x) end)
  local got = message(function() dev:forward(D.to(x)) end)
  t.ok(want ~= nil and want:find('channels', 1, true) ~= nil, 'conv: 5 channels for 4 refused on the CPU: ' .. tostring(want))
  t.eq(got, want, 'conv: the same message on the device')
  local xs = crlab.randn(2, 4, 1, 1)
  local p = ffi.new('crl_conv2d_params', 1, 1, 0, 0, 1, 1, 1, 0)
  local pc = ffi.gc(C.crl_conv2d_plan_new(p, C.CRL_CONV_REFERENCE), C.crl_conv2d_plan_free)
  local pd = ffi.gc(C.crl_conv2d_plan_new(p, C.CRL_CONV_REFERENCE), C.crl_conv2d_plan_free)
  local wt = crlab.randn(6, 4, 3, 3)
  want = message(function() core.check(C.crl_conv2d_plan_forward(pc, crlab.tensor(0), xs, wt, nil, 1)) end)
  got = message(function() core.check(C.crl_conv2d_plan_forward(pd, D.to(crlab.tensor(0)), D.to(xs), D.to(wt), nil, 1)) end)
  t.ok(want ~= nil and want:find('larger than the padded input', 1, true) ~= nil, 'conv: a kernel larger than the input refused')
  t.eq(got, want, 'conv: the same message on the device (kernel too large)')
  if not D.stand_in then
    t.errors(function() dev:forward(crlab.randn(2, 4, 6, 6)) end, 'is on the', 'conv: a CPU input to a CUDA layer is refused')
  end
end}

-- batch norm: a few training steps, then evaluation; forward, backward,
-- saved and running statistics
local function bn_case(name, make, size)
  return function()
    local cpu, dev = D.pair(5, make)
    if cpu.weight then
      cpu.weight:uniform(0.5, 1.5); cpu.bias:uniform(-0.5, 0.5)
      dev.weight:copy(D.to(cpu.weight)); dev.bias:copy(D.to(cpu.bias))
    end
    for step = 1, 3 do
      local x = crlab.randn(size) * 2 + 0.5
      local dx = D.to(x)
      local y = cpu:forward(x)
      D.close(t, dev:forward(dx), y, ('%s: training forward, step %d'):format(name, step))
      local g = crlab.randn(size)
      D.close(t, dev:backward(dx, D.to(g)), cpu:backward(x, g), ('%s: training grad in, step %d'):format(name, step))
    end
    D.close(t, dev.save_mean, cpu.save_mean, name .. ': saved mean')
    D.close(t, dev.save_invstd, cpu.save_invstd, name .. ': saved 1/std')
    D.close(t, dev.running_mean, cpu.running_mean, name .. ': running mean after 3 steps')
    D.close(t, dev.running_var, cpu.running_var, name .. ': running variance (unbiased) after 3 steps')
    if cpu.weight then
      D.close(t, dev.gradWeight, cpu.gradWeight, name .. ': grad weight, accumulated over 3 steps')
      D.close(t, dev.gradBias, cpu.gradBias, name .. ': grad bias, accumulated over 3 steps')
    end
    cpu:evaluate(); dev:evaluate()
    local x = crlab.randn(size)
    local dx = D.to(x)
    D.close(t, dev:forward(dx), cpu:forward(x), name .. ': evaluation forward')
    D.close(t, dev.save_invstd, cpu.save_invstd, name .. ': evaluation fills 1/std from the running variance')
    local g = crlab.randn(size)
    D.close(t, dev:backward(dx, D.to(g)), cpu:backward(x, g), name .. ': evaluation grad in')
    if cpu.weight then
      D.close(t, dev.gradWeight, cpu.gradWeight, name .. ': evaluation grad weight')
      D.close(t, dev.gradBias, cpu.gradBias, name .. ': evaluation grad bias')
    end
  end
end

cases[#cases + 1] = {'BatchNorm2d', bn_case('BatchNorm2d(5)', function() return nn.BatchNorm2d(5) end, {3, 5, 7, 9})}
cases[#cases + 1] = {'BatchNorm2d + ReLU', bn_case('BatchNorm2d(4) + ReLU',
                                                   function() return nn.BatchNorm2d(4, {relu = true}) end, {3, 4, 5, 6})}
cases[#cases + 1] = {'BatchNorm2d, no affine, momentum 0.3', bn_case('BatchNorm2d(3), no affine',
  function() return nn.BatchNorm2d(3, {affine = false, momentum = 0.3, eps = 1e-3}) end, {2, 3, 4, 5})}
cases[#cases + 1] = {'BatchNorm1d', bn_case('BatchNorm1d(6)', function() return nn.BatchNorm1d(6) end, {9, 6})}
cases[#cases + 1] = {'BatchNorm1d + ReLU', bn_case('BatchNorm1d(6) + ReLU',
                                                   function() return nn.BatchNorm1d(6, {relu = true}) end, {9, 6})}

cases[#cases + 1] = {'BatchNorm: bad inputs', function()
  local cpu, dev = D.pair(3, function() return nn.BatchNorm2d(5) end)
  local x = crlab.randn(2, 4, 3, 3)
  local want = message(function() cpu:forward(x) end)
  local got = message(function() dev:forward(D.to(x)) end)
  t.ok(want ~= nil and want:find('one per channel', 1, true) ~= nil, 'BN: 4 channels for 5 refused on the CPU: ' .. tostring(want))
  t.eq(got, want, 'BN: the same message on the device')
  local one = crlab.randn(1, 5, 1, 1)
  want = message(function() cpu:forward(one) end)
  got = message(function() dev:forward(D.to(one)) end)
  t.ok(want ~= nil and want:find('more than one value per channel', 1, true) ~= nil, 'BN: one value per channel refused')
  t.eq(got, want, 'BN: the same message on the device (one value per channel)')
  if not D.stand_in then
    t.errors(function() dev:forward(crlab.randn(2, 5, 3, 3)) end, 'is on the', 'BN: a CPU input to a CUDA layer is refused')
  end
end}

D.run(t, cases)
t.done()
