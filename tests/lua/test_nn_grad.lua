-- Every layer's backward pass (input and parameters) against central
-- finite differences, on small random shapes.
local t = require 'tap'
local crlab = require 'crlab'
local nn = require 'crlab.nn'
local gc = require 'gradcheck'

crlab.manualSeed(11)
math.randomseed(11)
local TOL = 2e-3
local kink = {h = 2 ^ -10}

local function report(name, errs)
  local worst, parts = 0, {}
  local keys = {}
  for k in pairs(errs) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do
    worst = math.max(worst, errs[k])
    parts[#parts + 1] = string.format('%s %.1e', k, errs[k])
  end
  t.ok(worst < TOL and #keys > 0, name .. ': backward = finite differences (' .. table.concat(parts, ', ') .. ')')
end

-- Linear
report('Linear(5 -> 4)', gc.check(nn.Linear(5, 4), crlab.randn(3, 5)))
report('Linear(5 -> 4) without bias', gc.check(nn.Linear(5, 4, {bias = false}), crlab.randn(3, 5)))

-- Convolution: padding, stride, non-square inputs, 1x1, no bias
local convs = {
  {'Conv2d(3 -> 4, 3x3, pad 1)', nn.Conv2d(3, 4, 3, {padding = 1}), {2, 3, 6, 5}},
  {'Conv2d(2 -> 3, 3x3, stride 2, pad 1)', nn.Conv2d(2, 3, 3, {stride = 2, padding = 1}), {2, 2, 7, 6}},
  {'Conv2d(3 -> 2, 1x1)', nn.Conv2d(3, 2, 1), {2, 3, 4, 4}},
  {'Conv2d(2 -> 2, 5x3 kernel, stride 2, no bias)', nn.Conv2d(2, 2, {5, 3}, {stride = 2, bias = false}), {1, 2, 9, 7}},
  {'Conv2d(4 -> 6, 3x3, groups 2, pad 1)', nn.Conv2d(4, 6, 3, {groups = 2, padding = 1}), {2, 4, 5, 5}},
  {'Conv2d(3 -> 2, 3x3, dilation 2, pad 2)', nn.Conv2d(3, 2, 3, {dilation = 2, padding = 2}), {2, 3, 6, 6}},
  {'Conv2d(4 -> 4, 3x3, reference, groups 4 (depthwise), dilation 2)',
   nn.Conv2d(4, 4, 3, {groups = 4, dilation = 2, padding = 2, backend = 'reference'}), {2, 4, 6, 5}},
}
for _, c in ipairs(convs) do report(c[1], gc.check(c[2], crlab.randn(c[3]))) end

-- Batch normalisation in both modes
local bn = nn.BatchNorm2d(3)
report('BatchNorm2d(3), training', gc.check(bn, crlab.randn(4, 3, 3, 2) * 2 + 1))
local bn_eval = nn.BatchNorm2d(3)
bn_eval.running_mean:copy(crlab.randn(3))
bn_eval.running_var:copy(crlab.rand(3) + 0.5)
bn_eval.weight:copy(crlab.randn(3))
bn_eval:evaluate()
report('BatchNorm2d(3), evaluation', gc.check(bn_eval, crlab.randn(2, 3, 2, 2)))
report('BatchNorm1d(4), training', gc.check(nn.BatchNorm1d(4), crlab.randn(6, 4)))
-- fused ReLU: keep the normalised values away from 0 (the kink) by shifting
local bnr = nn.BatchNorm2d(2, {relu = true})
bnr.bias:copy(crlab.tensor{0.3, -0.2})
report('BatchNorm2d(2) + ReLU, training', gc.check(bnr, gc.away_from_zero(3, 2, 2, 2), kink))
local bnr_eval = nn.BatchNorm2d(2, {relu = true})
bnr_eval.running_mean:copy(crlab.tensor{0.1, -0.1})
bnr_eval:evaluate()
report('BatchNorm2d(2) + ReLU, evaluation', gc.check(bnr_eval, gc.away_from_zero(2, 2, 2, 2), kink))

-- Activations and pooling: inputs kept away from kinks and ties, small h
report('ReLU', gc.check(nn.ReLU(), gc.away_from_zero(3, 4, 5), kink))
report('ReLU in place after a linear layer', gc.check(nn.Sequential(nn.Linear(5, 6), nn.ReLU(true)),
                                                     gc.away_from_zero(3, 5), kink))
report('MaxPool2d(2)', gc.check(nn.MaxPool2d(2), gc.distinct(2, 2, 6, 6), kink))
report('MaxPool2d(3, stride 2, pad 1)', gc.check(nn.MaxPool2d(3, {stride = 2, padding = 1}), gc.distinct(2, 2, 7, 7), kink))
report('AvgPool2d(2)', gc.check(nn.AvgPool2d(2), crlab.randn(2, 3, 4, 6)))
report('AvgPool2d(3, stride 2, pad 1)', gc.check(nn.AvgPool2d(3, {stride = 2, padding = 1}), crlab.randn(2, 2, 7, 5)))
report('AvgPool2d(3, stride 2, pad 1, count_include_pad = false)',
       gc.check(nn.AvgPool2d(3, {stride = 2, padding = 1, count_include_pad = false}), crlab.randn(2, 2, 7, 5)))
report('GlobalAvgPool2d', gc.check(nn.GlobalAvgPool2d(), crlab.randn(2, 3, 4, 5)))

-- Dropout: the mask is fixed by restoring the generator before each pass
local state = crlab.getRNGState()
report('Dropout(0.3)', gc.check(nn.Dropout(0.3), crlab.randn(4, 6),
                                {before = function() crlab.setRNGState(state) end}))

-- Shape modules and containers
report('Flatten', gc.check(nn.Flatten(), crlab.randn(2, 3, 2, 2)))
report('ShortcutPad(2 -> 4, stride 2)', gc.check(nn.ShortcutPad(2, 4, 2), crlab.randn(2, 2, 5, 4)))
report('Residual(conv-bn, identity)',
       gc.check(nn.Residual(nn.Sequential(nn.Conv2d(2, 2, 3, {padding = 1, bias = false}), nn.BatchNorm2d(2))),
                crlab.randn(2, 2, 4, 4)))
report('Residual(conv stride 2, ShortcutPad)',
       gc.check(nn.Residual(nn.Conv2d(2, 4, 3, {stride = 2, padding = 1}), nn.ShortcutPad(2, 4, 2)),
                crlab.randn(2, 2, 5, 5)))
report('Concat(2, Identity, Conv2d)', gc.check(nn.Concat(2, nn.Identity(), nn.Conv2d(2, 3, 1)),
                                              crlab.randn(2, 2, 3, 3)))
-- (a convolution followed by batch norm has no bias: its gradient would be
-- exactly zero and the finite difference pure rounding noise)
local small = nn.Sequential(nn.Conv2d(1, 3, 3, {padding = 1, bias = false}), nn.BatchNorm2d(3), nn.AvgPool2d(2),
                            nn.Flatten(), nn.Linear(12, 5))
report('Sequential(conv, bn, avgpool, flatten, linear)', gc.check(small, crlab.randn(3, 1, 4, 4)))
local p, g = small:getParameters()
report('the same after getParameters (parameters are views of one slab)', gc.check(small, crlab.randn(3, 1, 4, 4)))
t.eq(p:numel(), 3 * 9 + 3 + 3 + 12 * 5 + 5, 'the slab holds every parameter')
t.done()
