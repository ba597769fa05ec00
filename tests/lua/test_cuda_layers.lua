-- The CUDA backend's layers against the CPU's, through the nn modules:
-- ReLU, max and average pooling, global average pooling and the padding
-- shortcut, forward and gradInput, on odd sizes (batch 3, 5 channels, 7x9
-- images), overlapping and padded windows; max pooling's indices must be
-- the CPU's; bad inputs must fail as on the CPU. See devcheck.lua.
local t = require 'tap'
local crlab = require 'crlab'
local nn = require 'crlab.nn'
local core = require 'crlab.core'
local D = require 'devcheck'
local C, check = core.C, core.check

local SHAPE = {3, 5, 7, 9}

-- The module made by `make` on both devices: forward and gradInput compared
-- (rtol as D.close); returns both modules and the inputs each saw.
local function both(name, make, x, rtol)
  local cpu, dev = D.pair(17, make)
  local xd = D.to(x)
  local y = cpu:forward(x:clone())
  local yd = dev:forward(xd:clone())
  D.close(t, yd, y, name .. ': forward', rtol)
  local gy = crlab.randn(y:size())
  local gyd = D.to(gy) -- before an in-place backward overwrites gy
  local gx = cpu:backward(x, gy)
  local gxd = dev:backward(xd, gyd)
  D.close(t, gxd, gx, name .. ': gradInput', rtol)
  return cpu, dev, gy
end

-- Max pooling: values, gradients, indices equal to the CPU's, and the CPU's
-- backward fed the device's indices gives the CPU's gradient.
local function maxpool(name, k, opts, x)
  local cpu, dev, gy = both(name, function() return nn.MaxPool2d(k, opts) end, x)
  D.close(t, dev.indices, cpu.indices, name .. ': indices equal the CPU\'s', 0)
  local gx = crlab.zeros(0)
  check(C.crl_maxpool2d_backward(gx, gy, D.host(dev.indices), x))
  D.close(t, gx, cpu.gradInput, name .. ': the CPU backward reads the device\'s indices', 0)
end

-- The error text from "crl_..." on (Lua adds where it was raised).
local function message(err) return tostring(err):match('crl_[%w_]+: .*') or tostring(err) end

-- fn(to) runs an operation with its inputs passed through `to`: on the CPU
-- and on the device it must fail with one message.
local function same_error(name, fn)
  local ok_c, e_c = pcall(fn, function(x) return x end)
  local ok_d, e_d = pcall(fn, D.to)
  local good = not ok_c and not ok_d and message(e_c) == message(e_d)
  if not t.ok(good, name .. ': the CPU\'s message, ' .. (ok_d and 'no error' or message(e_d))) then
    t.diag('cpu: ' .. (ok_c and 'no error' or message(e_c)))
    t.diag('device: ' .. (ok_d and 'no error' or message(e_d)))
  end
end

-- fn() must fail naming both devices (the op layer's refusal).
local function mixed(name, fn)
  if D.stand_in then
    t.skip(name .. ': mixed devices need a device besides the CPU')
    return
  end
  local ok, err = pcall(fn)
  local msg = message(err)
  if not t.ok(not ok and msg:find('on the CUDA', 1, true) and msg:find('on the CPU', 1, true), name .. ': refused') then
    t.diag(ok and 'no error' or msg)
  end
end

local function pool_params(k, s, p, cip)
  return require('ffi').new('crl_pool2d_params', k, k, s, s, p, p, cip == false and 0 or 1)
end

crlab.manualSeed(23)
D.run(t, {
  {'ReLU', function()
    both('ReLU', function() return nn.ReLU() end, crlab.randn(SHAPE))
    both('ReLU in place', function() return nn.ReLU(true) end, crlab.randn(SHAPE))
    local z = crlab.randn(SHAPE):clamp(0, 1) -- exact zeros: the kink passes no gradient on either
    both('ReLU at 0', function() return nn.ReLU() end, z)
  end},
  {'MaxPool2d', function()
    maxpool('MaxPool2d(2) on 7x9', 2, nil, crlab.randn(SHAPE))
    maxpool('MaxPool2d(3, stride 2, pad 1), overlapping and padded', 3, {stride = 2, padding = 1}, crlab.randn(SHAPE))
    maxpool('MaxPool2d(3, stride 1, pad 1)', 3, {stride = 1, padding = 1}, crlab.randn(SHAPE))
    maxpool('MaxPool2d(2, stride 3), gaps between windows', 2, {stride = 3}, crlab.randn(SHAPE))
    -- many equal values: ties must pick the same (first) position
    maxpool('MaxPool2d(3, stride 2, pad 1) with ties', 3, {stride = 2, padding = 1}, crlab.randn(SHAPE):clamp(0, 0.5))
  end},
  {'MaxPool2d, deterministic backward', function()
    if not D.stand_in then crlab.cuda.deterministic(true) end
    local ok, err = pcall(both, 'MaxPool2d(3, stride 1, pad 1), deterministic: equal to the CPU bit for bit',
                          function() return nn.MaxPool2d(3, {stride = 1, padding = 1}) end, crlab.randn(SHAPE), 0)
    if not D.stand_in then crlab.cuda.deterministic(false) end
    if not ok then error(err, 0) end
  end},
  {'AvgPool2d', function()
    local cases = {
      {'AvgPool2d(2) on 7x9', 2},
      {'AvgPool2d(3, stride 2, pad 1)', 3, {stride = 2, padding = 1}},
      {'AvgPool2d(3, stride 2, pad 1, count_include_pad = false)', 3,
       {stride = 2, padding = 1, count_include_pad = false}},
      {'AvgPool2d(3, stride 1, pad 1, count_include_pad = false)', 3,
       {stride = 1, padding = 1, count_include_pad = false}},
      {'AvgPool2d(5, stride 2, pad 2)', 5, {stride = 2, padding = 2}},
      {'AvgPool2d(2, stride 3)', 2, {stride = 3}},
    }
    for _, c in ipairs(cases) do both(c[1], function() return nn.AvgPool2d(c[2], c[3]) end, crlab.randn(SHAPE)) end
  end},
  {'GlobalAvgPool2d', function()
    both('GlobalAvgPool2d on 7x9', function() return nn.GlobalAvgPool2d() end, crlab.randn(SHAPE))
    both('GlobalAvgPool2d on 1x1', function() return nn.GlobalAvgPool2d() end, crlab.randn(3, 5, 1, 1))
  end},
  {'ShortcutPad', function()
    both('ShortcutPad(5 -> 10, stride 2)', function() return nn.ShortcutPad(5, 10, 2) end, crlab.randn(SHAPE))
    both('ShortcutPad(5 -> 8, stride 1), odd padding', function() return nn.ShortcutPad(5, 8, 1) end,
         crlab.randn(SHAPE))
    both('ShortcutPad(5 -> 5, stride 3)', function() return nn.ShortcutPad(5, 5, 3) end, crlab.randn(SHAPE))
  end},
  {'mixed devices', function()
    local x, gy = crlab.randn(SHAPE), crlab.randn(SHAPE)
    local y = x:clone()
    mixed('crl_relu_backward, grad_out on the device, out on the CPU', function()
      check(C.crl_relu_backward(crlab.zeros(0), D.to(gy), y))
    end)
    local p = pool_params(2, 2, 0)
    local out, ix = crlab.zeros(0), crlab.zeros({0}, 'int32')
    check(C.crl_maxpool2d_forward(out, ix, x, p))
    mixed('crl_maxpool2d_backward, indices on the CPU', function()
      check(C.crl_maxpool2d_backward(crlab.zeros(0), D.to(crlab.randn(out:size())), ix, D.to(x)))
    end)
    mixed('crl_avgpool2d_backward, in on the CPU', function()
      check(C.crl_avgpool2d_backward(crlab.zeros(0), D.to(crlab.randn(out:size())), x, p))
    end)
    mixed('crl_shortcut_pad_backward, in on the CPU', function()
      check(C.crl_shortcut_pad_backward(crlab.zeros(0), D.to(crlab.randn(3, 10, 4, 5)), x, 2))
    end)
  end},
  {'bad input', function()
    local x = crlab.randn(SHAPE)
    local p2 = pool_params(2, 2, 0)
    local function o() return crlab.zeros(0) end
    same_error('ReLU on int32', function(to) check(C.crl_relu_forward(o(), to(crlab.zeros(SHAPE, 'int32')))) end)
    same_error('ReLU backward, grad_out of another size', function(to)
      check(C.crl_relu_backward(o(), to(crlab.randn(3, 5, 7, 8)), to(x)))
    end)
    same_error('MaxPool2d on a 3-d input', function(to)
      check(C.crl_maxpool2d_forward(o(), crlab.zeros({0}, 'int32'), to(crlab.randn(5, 7, 9)), p2))
    end)
    same_error('MaxPool2d, kernel larger than the input', function(to)
      check(C.crl_maxpool2d_forward(o(), crlab.zeros({0}, 'int32'), to(crlab.randn(3, 5, 1, 9)), pool_params(3, 2, 0)))
    end)
    same_error('MaxPool2d, pad over half the kernel', function(to)
      check(C.crl_maxpool2d_forward(o(), crlab.zeros({0}, 'int32'), to(x), pool_params(2, 2, 2)))
    end)
    same_error('MaxPool2d on a non-contiguous input', function(to)
      check(C.crl_maxpool2d_forward(o(), crlab.zeros({0}, 'int32'), to(x):transpose(3, 4), p2))
    end)
    same_error('MaxPool2d backward, float indices', function(to)
      check(C.crl_maxpool2d_backward(o(), to(crlab.randn(3, 5, 3, 4)), to(crlab.zeros(3, 5, 3, 4)), to(x)))
    end)
    same_error('AvgPool2d backward, grad_out of another shape', function(to)
      check(C.crl_avgpool2d_backward(o(), to(crlab.randn(3, 5, 4, 4)), to(x), p2))
    end)
    same_error('GlobalAvgPool2d backward, grad_out of another size', function(to)
      check(C.crl_global_avgpool2d_backward(o(), to(crlab.randn(3, 4)), to(x)))
    end)
    same_error('ShortcutPad, fewer output channels', function(to)
      check(C.crl_shortcut_pad_forward(o(), to(x), 4, 2))
    end)
    same_error('ShortcutPad, stride 0', function(to) check(C.crl_shortcut_pad_forward(o(), to(x), 10, 0)) end)
    same_error('ShortcutPad backward, grad_out of another size', function(to)
      check(C.crl_shortcut_pad_backward(o(), to(crlab.randn(3, 10, 4, 4)), to(x), 2))
    end)
  end},
})
t.done()
