-- scripts/experiments/fmnist.lua -- the main comparison's CRL side as an
-- experiment file: the small CNN on Fashion-MNIST (Debian's
-- dataset-fashion-mnist), CRL(1.5, 1), the budget of the main job.
--   crlab scripts/train.lua --experiment scripts/experiments/fmnist.lua
--   crlab scripts/train.lua --experiment scripts/experiments/fmnist.lua --loss ce    # the CE side
-- Command-line options override the fields below (--epochs 1 for a try).
-- For CE and CRL over several seeds with mean, std and a p-value, run the
-- fmnist suite (make run).
return {
  name = 'fmnist-cnn',
  dataset = 'fashion-mnist',
  model = 'cnn',
  loss = crlab.loss.crl{alpha = 1.5, beta = 1},   -- stands for --loss crl --alpha 1.5 --beta 1
  optimizer = {'sgd', momentum = 0.9, nesterov = true, weightDecay = 5e-4},
  lr = 0.05, schedule = 'cosine',
  epochs = 2, batch = 128, seed = 1,           -- as in scripts/suites/fmnist.lua: keep the two alike
}
