-- Convolution plans: oneDNN (blocked layouts) against the im2col reference
-- on every convolution shape the models use plus strides, paddings, groups,
-- dilation, 1x1 and 7x7; blocked <-> plain round trips; plain-only
-- operations refusing blocked tensors; a whole ResNet-20 training step on
-- both paths; and bitwise determinism for a seed and a thread count.
local t = require 'tap'
local ffi = require 'ffi'
local crlab = require 'crlab'
local nn = require 'crlab.nn'
local models = require 'crlab.models'
local optim = require 'crlab.optim'
local C = crlab.C

crlab.manualSeed(5)

-- ||a - b|| / ||b|| over plain copies
local function relerr(a, b)
  local d = a:plain() - b:plain()
  return math.sqrt((d * d):sum()) / math.max(math.sqrt((b:plain() * b:plain()):sum()), 1e-30)
end

-- {name, C, F, H, W, k, opts}; batch 4 (ResNet-20's shapes at 32x32 and
-- below, WRN's 1x1 projections, ResNet-18's 7x7 stem, DenseNet's 12-channel
-- growth that pads the channel blocks)
local shapes = {
  {'stem 3->16 32x32', 3, 16, 32, 32, 3, {padding = 1}},
  {'16->16 32x32', 16, 16, 32, 32, 3, {padding = 1}},
  {'16->32 s2', 16, 32, 32, 32, 3, {padding = 1, stride = 2}},
  {'32->32 16x16 (winograd where the CPU has it)', 32, 32, 16, 16, 3, {padding = 1}},
  {'32->64 s2', 32, 64, 16, 16, 3, {padding = 1, stride = 2}},
  {'64->64 8x8', 64, 64, 8, 8, 3, {padding = 1}},
  {'1x1 16->32 s2 projection', 16, 32, 16, 16, 1, {stride = 2}},
  {'7x7 s2 pad 3 stem 3->8 with bias', 3, 8, 30, 30, 7, {stride = 2, padding = 3, bias = true}},
  {'12 -> 20 channels (padded blocks)', 12, 20, 9, 7, 3, {padding = 1}},
  {'groups 2, 8 -> 12', 8, 12, 10, 10, 3, {padding = 1, groups = 2}},
  {'depthwise 16 groups', 16, 16, 12, 12, 3, {padding = 1, groups = 16}},
  {'dilation 2, pad 2', 8, 8, 11, 11, 3, {padding = 2, dilation = 2}},
  {'non-square 5x3 kernel, stride 2, no padding', 5, 6, 13, 9, {5, 3}, {stride = 2}},
}
for _, sh in ipairs(shapes) do
  local name, cin, cout, h, w, k, o = unpack(sh)
  local opts = {stride = o.stride, padding = o.padding, groups = o.groups, dilation = o.dilation,
                bias = o.bias or false}
  crlab.manualSeed(21)
  opts.backend = 'onednn'
  local a = nn.Conv2d(cin, cout, k, opts)
  opts.backend = 'reference'
  local r = nn.Conv2d(cin, cout, k, opts)
  r.weight:copy(a.weight)
  if a.bias then a.bias:uniform(-1, 1); r.bias:copy(a.bias) end
  local x = crlab.randn(4, cin, h, w)
  local ya, yr = a:updateOutput(x), r:updateOutput(x)
  local g = crlab.randn(yr:size())
  local gl = crlab.tensor(0) -- the gradient in the layout of the output, as the containers hand it over
  C.crl_tensor_reorder(gl, g, ya.layout)
  local ga, gr = a:backward(x, gl), r:backward(x, g)
  local e = {relerr(ya, yr), relerr(ga, gr), relerr(a.gradWeight, r.gradWeight)}
  if a.bias then e[4] = relerr(a.gradBias, r.gradBias) end
  local worst = math.max(unpack(e))
  local ok = t.ok(worst < 1e-5 and ya.layout ~= 0 and ga.layout == x.layout,
                  string.format('%s: oneDNN = reference (out %.1e, grad in %.1e, grad weight %.1e%s), out %s',
                                name, e[1], e[2], e[3], e[4] and string.format(', grad bias %.1e', e[4]) or '',
                                ya:layoutName()))
  t.diag(a:describe())
  -- a blocked input, and a plain output on request
  local xb = crlab.tensor(0)
  C.crl_tensor_reorder(xb, x, C.crl_layout_preferred())
  local yb = crlab.tensor(0)
  local core_ok = C.crl_conv2d_plan_forward(a:plan(), yb, xb, a.weight, a.bias, 1)
  t.ok(core_ok == 0 and yb.layout == 0 and relerr(yb, yr) < 1e-5,
       name .. ': a blocked input gives the same output, plain when asked')
end

t.ok(#crlab.nn.Conv2d(16, 16, 3):describe() > 0, 'a plan describes itself before running')

-- weight gradients accumulate (+=), as the API promises
do
  local a = nn.Conv2d(8, 8, 3, {padding = 1})
  local x = crlab.randn(2, 8, 6, 6)
  local y = a:forward(x)
  local g = crlab.randn(y:size())
  a:zeroGradParameters()
  a:backward(x, g)
  local once = a.gradWeight:clone()
  local bonce = a.gradBias:clone()
  a:backward(x, g)
  t.ok(relerr(a.gradWeight, once * 2) < 1e-6 and relerr(a.gradBias, bonce * 2) < 1e-6,
       'a second backward adds to the weight and bias gradients')
end

-- layouts: exact round trips, element access, plain-only ops refuse
for _, layout in ipairs({C.CRL_LAYOUT_NCHW8C, C.CRL_LAYOUT_NCHW16C}) do
  local x = crlab.randn(3, 21, 5, 4)
  local b, p = crlab.tensor(0), crlab.tensor(0)
  t.ok(C.crl_tensor_reorder(b, x, layout) == 0 and C.crl_tensor_reorder(p, b, 0) == 0 and (p - x):abs():max() == 0,
       'plain -> ' .. b:layoutName() .. ' -> plain is exact (21 channels: a padded block)')
  local v = ffi.new('double[1]')
  local lin = ((1 * 21 + 16) * 5 + 2) * 4 + 1
  t.ok(C.crl_tensor_get(v, b, lin) == 0 and v[0] == x[2][17][3][2] and b:plain()[3][21][5][4] == x[3][21][5][4],
       'elements of a blocked tensor read as in the plain one')
  t.errors(function() return b[1] end, 'blocked layout', 'indexing a blocked tensor from Lua asks for :plain()')
  t.errors(function() return b + 1 end, 'blocked layout', 'arithmetic on a blocked tensor is refused with a message')
  t.errors(function() return b:narrow(2, 1, 3) end, 'convert it first', 'a view of a blocked tensor is refused')
  local c = b:clone()
  t.ok(c.layout == 0 and (c - x):abs():max() == 0, 'clone of a blocked tensor is a plain copy')
end
t.errors(function() require('crlab.core').check(C.crl_tensor_reorder(crlab.tensor(0), crlab.randn(2, 3), 16)) end,
         'for layout nChw16c', 'a blocked layout for a 2-d tensor is refused')

-- the layers between convolutions give the same numbers on blocked input
-- as on plain: forward and input gradient (and BN's parameter gradients)
local between = {
  {'MaxPool2d(3, stride 2, pad 1)', function() return nn.MaxPool2d(3, {stride = 2, padding = 1}) end},
  {'AvgPool2d(2)', function() return nn.AvgPool2d(2) end},
  {'GlobalAvgPool2d', function() return nn.GlobalAvgPool2d() end},
  {'BatchNorm2d + ReLU', function() return nn.BatchNorm2d(21, {relu = true}) end},
  {'BatchNorm2d', function() return nn.BatchNorm2d(21) end},
  {'ReLU', function() return nn.ReLU() end},
  {'ShortcutPad(21 -> 37, stride 2)', function() return nn.ShortcutPad(21, 37, 2) end},
}
for _, layout in ipairs({C.CRL_LAYOUT_NCHW8C, C.CRL_LAYOUT_NCHW16C}) do
  for _, b in ipairs(between) do
    local mp, mb = b[2](), b[2]()
    local x = crlab.randn(3, 21, 9, 7)
    local xb = crlab.tensor(0)
    C.crl_tensor_reorder(xb, x, layout)
    local yp, yb = mp:updateOutput(x), mb:updateOutput(xb)
    local g = crlab.randn(yp:size())
    local gb = g
    if yb.layout ~= 0 then gb = crlab.tensor(0); C.crl_tensor_reorder(gb, g, layout) end
    local gp, gbk = mp:backward(x, g), mb:backward(xb, gb)
    local e = math.max(relerr(yb, yp), relerr(gbk, gp))
    if mp.gradWeight then e = math.max(e, relerr(mb.gradWeight, mp.gradWeight), relerr(mb.gradBias, mp.gradBias)) end
    t.ok(e < 1e-5 and (yb.layout == layout or yb:dim() == 2) and gbk.layout == layout,
         string.format('%s on %s = on plain (%.1e)', b[1], xb:layoutName(), e))
  end
end

-- blocked tensors as outputs and wrong-shaped blocked gradients
do
  local L = C.crl_layout_preferred()
  local x = crlab.randn(2, 5, 3, 3)
  local out = crlab.tensor(0)
  C.crl_tensor_reorder(out, crlab.randn(2, 5, 3, 3), L)
  t.ok(C.crl_tensor_binary(out, x, x, C.CRL_OP_ADD) == 0 and out.layout == 0 and (out - x * 2):abs():max() == 0,
       'a blocked tensor given as the output of a plain operation is re-made plain, not written as if plain')
  local y, g = crlab.tensor(0), crlab.tensor(0)
  C.crl_tensor_reorder(y, crlab.randn(1, 4, 2, 4), L)
  C.crl_tensor_reorder(g, crlab.randn(1, 8, 2, 2), L)
  local rc = C.crl_relu_backward(g, g, y)
  t.ok(rc ~= 0 and require('crlab.core').last_error():find('must have one shape', 1, true),
       'ReLU backward refuses a blocked gradient of another shape with as many elements: ' .. require('crlab.core').last_error())
  local bad = x:clone()
  bad.layout = 4
  t.errors(function() return bad:plain() end, 'blocked layouts are 8 and 16', 'a layout field of 4 is refused')
  t.errors(function() nn.ReLU():forward(bad) end, 'layout 4', 'and a layer refuses it too')
end

-- the reference backend takes blocked inputs and gradients as well
do
  crlab.manualSeed(9)
  local a = nn.Conv2d(8, 8, 3, {padding = 1})
  local r = nn.Conv2d(8, 8, 3, {padding = 1, backend = 'reference'})
  r.weight:copy(a.weight)
  r.bias:copy(a.bias)
  local x = crlab.randn(2, 8, 6, 6)
  local xb = crlab.tensor(0)
  C.crl_tensor_reorder(xb, x, C.crl_layout_preferred())
  local ya, yr = a:updateOutput(x), r:updateOutput(xb)
  local g = crlab.randn(2, 8, 6, 6)
  local gb = crlab.tensor(0)
  C.crl_tensor_reorder(gb, g, C.crl_layout_preferred())
  local ga, gr = a:backward(x, g), r:backward(xb, gb)
  t.ok(relerr(yr, ya) < 1e-5 and relerr(gr, ga) < 1e-5 and gr.layout == xb.layout,
       'the im2col backend on a blocked input and gradient = oneDNN')
end

-- a plan made for 2 threads is not reused with 1
do
  local m = nn.Conv2d(16, 16, 3, {padding = 1})
  local x = crlab.randn(4, 16, 8, 8)
  local y2 = m:updateOutput(x):plain()
  local old = C.crl_get_num_threads()
  C.crl_set_num_threads(1)
  local y1 = m:updateOutput(x):plain()
  C.crl_set_num_threads(old)
  t.ok(relerr(y1, y2) < 1e-6, 'a change of thread count makes a new primitive with the same results')
end

-- blocked batch norm statistics where the mean is far from zero and the
-- planes are large (one-pass moments around a shift must not cancel),
-- against the statistics in double precision
do
  local N, Cc, H, W = 4, 16, 56, 56
  local bb = nn.BatchNorm2d(Cc)
  local x = crlab.randn(N, Cc, H, W) * 0.01 + 1000
  local xb = crlab.tensor(0)
  C.crl_tensor_reorder(xb, x, C.crl_layout_preferred())
  local yb = bb:updateOutput(xb):plain()
  local px = ffi.cast('float *', C.crl_tensor_data(x))
  local py = ffi.cast('float *', C.crl_tensor_data(yb))
  local worst = 0
  for c = 0, Cc - 1 do
    local s, s2, m = 0, 0, N * H * W
    for n = 0, N - 1 do
      local base = (n * Cc + c) * H * W
      for q = 0, H * W - 1 do s = s + px[base + q] end
    end
    local mean = s / m
    for n = 0, N - 1 do
      local base = (n * Cc + c) * H * W
      for q = 0, H * W - 1 do s2 = s2 + (px[base + q] - mean) ^ 2 end
    end
    local inv = 1 / math.sqrt(s2 / m + 1e-5)
    for n = 0, N - 1 do
      local base = (n * Cc + c) * H * W
      for q = 0, H * W - 1, 37 do
        worst = math.max(worst, math.abs(py[base + q] - (px[base + q] - mean) * inv))
      end
    end
  end
  t.ok(worst < 0.02, string.format('BN on blocked 56x56 planes of mean 1000 and std 0.01: normalised output within ' ..
                                  '%.1e of the double-precision answer (float32 spacing at 1000 is 6e-5, 6e-3 std)',
                                  worst))
end

-- bad input
t.errors(function() nn.Conv2d(6, 4, 3, {groups = 4}) end, 'groups must divide', 'groups that do not divide are refused')
t.errors(function() nn.Conv2d(4, 4, 3):forward(crlab.randn(2, 3, 8, 8)) end, '3 channels',
         'an input with the wrong channel count is refused naming the shapes')
t.errors(function() nn.Conv2d(4, 4, 5):forward(crlab.randn(2, 4, 3, 3)) end, 'larger than the padded input',
         'a kernel larger than the input is refused')
t.errors(function() nn.Conv2d(4, 4, 3, {backend = 'gpu'}) end, "backend 'onednn' or 'reference'",
         'an unknown backend is refused')

-- a whole ResNet-20 step: oneDNN vs reference (the same initial weights)
local function step(backend, steps, threads)
  local old = C.crl_get_num_threads()
  if threads then C.crl_set_num_threads(threads) end
  crlab.manualSeed(7)
  nn.convBackend(backend)
  local m = models.build('resnet20', {channels = 3, classes = 10, size = 32})
  nn.convBackend('onednn')
  local params, grads, ranges = m:getParameters()
  local opt = optim.sgd(params, grads, {momentum = 0.9, weightDecay = 5e-4}, ranges)
  local crit = crlab.loss.crl{alpha = 1.5, beta = 1}
  local x = crlab.randn(16, 3, 32, 32)
  local y = crlab.tensor({0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2, 3, 4, 5}, 'int32')
  local losses, grads1 = {}, nil
  for s = 1, steps do
    local out = m:forward(x)
    losses[s] = crit:forward(out, y)
    grads:zero()
    m:backward(x, crit:backward(out, y))
    if s == 1 then grads1 = grads:clone() end
    opt:step(0.05)
  end
  C.crl_set_num_threads(old)
  return params, grads1, losses
end
local pa, ga, la = step('onednn', 3)
local pr, gr, lr = step('reference', 3)
t.ok(relerr(ga, gr) < 1e-4 and math.abs(la[1] - lr[1]) < 1e-5,
     string.format('ResNet-20 step: oneDNN gradients = reference (||diff||/||g|| %.1e), loss %.6f vs %.6f',
                   relerr(ga, gr), la[1], lr[1]))
t.ok(relerr(pa, pr) < 1e-4 and math.abs(la[3] - lr[3]) < 1e-3 * lr[3],
     string.format('after 3 SGD steps: weights %.1e apart, loss %.6f vs %.6f', relerr(pa, pr), la[3], lr[3]))
local pb = step('onednn', 3)
ffi.cdef[[int memcmp(const void *a, const void *b, size_t n);]]
t.ok(ffi.C.memcmp(C.crl_tensor_data(pa), C.crl_tensor_data(pb), pa:numel() * 4) == 0,
     'the same seed and thread count give bitwise-identical weights after 3 steps')
local p1 = step('onednn', 2, 1)
local p1b = step('onednn', 2, 1)
t.ok(ffi.C.memcmp(C.crl_tensor_data(p1), C.crl_tensor_data(p1b), p1:numel() * 4) == 0,
     'and again with 1 thread')
t.done()
