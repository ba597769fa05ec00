-- scripts/experiments/custom_augmentation.lua -- an augmentation pipeline of
-- one's own in place of the dataset's recipe: random crops after padding,
-- flips and random erasing-like cutout are crlab.transforms steps (C kernels
-- run in the loader's threads, drawn per sample from the seeded generator).
--   crlab scripts/train.lua --experiment scripts/experiments/custom_augmentation.lua [--epochs 1]
local T = crlab.transforms
local mean, std = {0.2860}, {0.3530}      -- Fashion-MNIST's

return {
  name = 'fmnist-cnn-aug',
  dataset = 'fashion-mnist',
  model = 'cnn',
  transform = {
    train = T.compose{T.randomCrop(28, {pad = 2, reflect = true}), T.hflip(), T.cutout(8), T.normalize(mean, std)},
    test = T.compose{T.normalize(mean, std)},
  },
  loss = 'crl', alpha = 1.5, beta = 1,
  optimizer = {'sgd', momentum = 0.9, nesterov = true, weightDecay = 5e-4},
  lr = 0.05, schedule = 'cosine', epochs = 5,
}
