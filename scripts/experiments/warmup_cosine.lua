-- scripts/experiments/warmup_cosine.lua -- a schedule written as a function
-- of the fractional epoch: linear warm-up over the first 2 epochs, then a
-- cosine decay to zero at the last; plus hooks: the learning rate logged
-- every 100 steps, and early stopping once the test accuracy has not
-- improved for 3 epochs (returning false from onEpoch ends the run, and a
-- --resume of it then does nothing).
--   crlab scripts/train.lua --experiment scripts/experiments/warmup_cosine.lua [--epochs 4]
local EPOCHS, WARM, PEAK = 10, 2, 0.1

local function schedule(e)
  if e < WARM then return PEAK * (e + 1e-3) / WARM end
  return PEAK * 0.5 * (1 + math.cos(math.pi * (e - WARM) / (EPOCHS - WARM)))
end

local best, since = 0, 0
return {
  name = 'fmnist-warmup-cosine',
  dataset = 'fashion-mnist',
  model = 'cnn',
  loss = crlab.loss.ce{smoothing = 0.1},
  optimizer = {'sgd', momentum = 0.9, nesterov = true, weightDecay = 5e-4},
  schedule = schedule, epochs = EPOCHS,
  onStep = function(s)
    if s.step % 100 == 0 then print(string.format('  step %d: lr %.4f', s.step, s.lr)) end
  end,
  onEpoch = function(rec)
    if rec.test_acc > best then best, since = rec.test_acc, 0 else since = since + 1 end
    return since < 3
  end,
}
