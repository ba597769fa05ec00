-- scripts/suites/fmnist.lua -- the main job (`make run`): the small cnn on
-- the real Fashion-MNIST (60,000 training and 10,000 test images, Debian's
-- dataset-fashion-mnist), cross-entropy against CRL(alpha 1.5, beta 1),
-- 3 seeds each: 6 runs at the same budget.
--
-- Budget: 2 epochs, batch 128, SGD with Nesterov momentum 0.9, lr 0.05 with
-- a cosine schedule, weight decay 5e-4. One epoch of this cnn (training
-- pass and test pass) took about 33 s on 2 cores (AMD EPYC, AVX2), so the
-- 12 epochs of the suite take about 7 minutes: 3 epochs would be over 10.
-- Two epochs are a short budget: the table says how the losses compare after
-- it, with the spread over seeds, not how they end after a full schedule.
--   crlab scripts/suite.lua run fmnist && crlab scripts/suite.lua report fmnist
return {
  name = 'fmnist',
  seeds = {1, 2, 3},
  losses = {{name = 'ce'}, {name = 'crl', alpha = 1.5, beta = 1}},
  options = {epochs = 2, batch = 128, lr = 0.05, nesterov = true, momentum = 0.9, ['weight-decay'] = 5e-4,
             schedule = 'cosine'},
  datasets = {
    {name = 'fashion-mnist', models = {'cnn'}},
  },
}
