-- scripts/suites/smoke.lua -- the smallest suite, for the tests and for
-- trying the runner: the cnn on the first 512 training and 200 test images
-- of the real Fashion-MNIST, 3 epochs, CE and CRL(1.5, 1), seeds 1 and 2
-- (4 runs of about 2 s each on 2 cores). Its numbers mean nothing.
--   crlab scripts/suite.lua run smoke && crlab scripts/suite.lua report smoke
return {
  name = 'smoke',
  seeds = {1, 2},
  losses = {{name = 'ce'}, {name = 'crl', alpha = 1.5, beta = 1}},
  options = {epochs = 3, batch = 32, lr = 0.05, nesterov = true, ['train-limit'] = 512, ['test-limit'] = 200,
             workers = 1},
  datasets = {
    {name = 'fashion-mnist', models = {'cnn'}},
  },
}
