-- Learning-rate schedules, gradient clipping and the weight-decay mask.
local t = require 'tap'
local crlab = require 'crlab'
local optim = require 'crlab.optim'
local nn = require 'crlab.nn'

local ms = optim.schedule{kind = 'multistep', lr = 0.1, milestones = {2, 4}, gamma = 0.1}
t.close(ms(0), 0.1, 1e-12, 'multistep: base rate before the first milestone')
t.close(ms(1.99), 0.1, 1e-12, 'multistep: still base just before epoch 2')
t.close(ms(2), 0.01, 1e-12, 'multistep: x0.1 from epoch 2')
t.close(ms(4.5), 0.001, 1e-12, 'multistep: x0.01 from epoch 4')
local cos = optim.schedule{kind = 'cosine', lr = 0.2, epochs = 10, min = 0}
t.close(cos(0), 0.2, 1e-12, 'cosine starts at lr')
t.close(cos(5), 0.1, 1e-12, 'cosine is at half at half way')
t.close(cos(10), 0, 0, 'cosine ends at min', 1e-12)
local warm = optim.schedule{kind = 'constant', lr = 0.4, warmup = 2, stepSize = 0.5}
t.close(warm(0), 0.1, 1e-12, 'warm-up: the first step gets lr * stepSize / warmup, not 0')
t.close(warm(1), 0.3, 1e-12, 'warm-up: linear')
t.close(warm(2), 0.4, 1e-12, 'warm-up: done at its end')
t.errors(function() optim.schedule{kind = 'step', lr = 0.1} end, "unknown kind 'step'", 'an unknown schedule')
t.errors(function() optim.schedule{kind = 'cosine', lr = 0.1} end, 'cosine needs epochs', 'cosine without epochs')

local g = crlab.tensor{3, 4}
t.close(optim.clipGradNorm(g, 1), 5, 1e-12, 'clipGradNorm returns the norm before clipping')
t.close(math.sqrt((g * g):sum()), 1, 1e-5, 'and scales the gradients to the maximum norm')
local g2 = crlab.tensor{0.3, 0.4}
optim.clipGradNorm(g2, 1)
t.close(g2[2], 0.4, 1e-7, 'gradients under the maximum are left alone')

-- weight decay skips batch-norm and bias parameters when asked
local m = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(2, 3))
local p, gr, ranges = m:getParameters()
local sgd = optim.sgd(p, gr, {weightDecay = 0.1, noDecay = {'bn', 'bias'}}, ranges)
local expect = 0
for _, r in ipairs(ranges) do if r.tag == 'weight' then expect = expect + r.count * 0.1 end end
t.close(sgd.decay:sum(), expect, 1e-6, 'the decay mask covers exactly the conv and linear weights')
local before = p:clone()
gr:zero()
sgd:step(1)
local changed_bn = (p:narrow(1, ranges[2].offset + 1, 4) - before:narrow(1, ranges[2].offset + 1, 4)):abs():max()
t.eq(changed_bn, 0, 'with zero gradients, batch-norm parameters do not decay')
t.ok((p - before):abs():max() > 0, 'but the weights do')
t.done()
