-- scripts/experiments/cifar_resnet110.lua -- ResNet-110 on CIFAR-10 with the
-- recipe of He et al. 2016 (arXiv 1512.03385, section 4.2): SGD, momentum
-- 0.9, weight decay 1e-4, batch 128, 164 epochs (64k iterations); lr 0.1
-- divided by 10 at 32k and 48k iterations (epochs 82 and 123); for the
-- 110-layer net the paper warms up at lr 0.01 "until the training error is
-- below 80% (about 400 iterations)": here the first epoch (391 iterations).
-- Crop 32 after padding by 4 and horizontal flips: the CIFAR recipe.
--   crlab scripts/train.lua --experiment scripts/experiments/cifar_resnet110.lua --data DIR [--loss ce]
-- (about a day per run on a CPU; use --device cuda where there is a GPU)
local function schedule(e)              -- e: epochs done, fractional
  if e < 1 then return 0.01 end
  if e < 82 then return 0.1 end
  if e < 123 then return 0.01 end
  return 0.001
end

return {
  name = 'cifar10-resnet110',
  dataset = 'cifar10',
  model = 'resnet110',
  loss = crlab.loss.crl{alpha = 1.5, beta = 1},
  optimizer = {'sgd', momentum = 0.9, weightDecay = 1e-4},
  schedule = schedule,
  epochs = 164, batch = 128, seed = 1,
}
