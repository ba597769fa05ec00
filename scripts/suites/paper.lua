-- scripts/suites/paper.lua -- the dataset suite of the CRL paper (Zhang et
-- al., arXiv 1907.13349): CIFAR-10, CIFAR-100, SVHN, CUB-200-2011, Stanford
-- Cars, Adience (5-fold cross-validation: one run per fold) and ImageNet,
-- each with CE, NLLR, CRL(1.5, 1) and, as further baselines, focal loss
-- (gamma 2) and label smoothing (0.1), over 3 seeds (Adience: 1 seed x 5
-- folds), on the architectures below.
--
-- The CRL paper's exact hyperparameters are not public. The recipes here
-- are each architecture's standard one, from its own paper:
--   ResNet-20/56/110 on CIFAR (He et al. 2016): SGD momentum 0.9, lr 0.1,
--     batch 128, weight decay 1e-4, 64k iterations = 164 epochs of 391
--     steps, lr / 10 at 32k and 48k iterations (epochs 82 and 123). (He et
--     al. warm ResNet-110 up at lr 0.01 for ~400 iterations; here a linear
--     warm-up over the first epoch stands in for it.)
--   WRN-28-10 on CIFAR (Zagoruyko & Komodakis 2016): 200 epochs, lr 0.1,
--     x0.2 at epochs 60, 120, 160, weight decay 5e-4, Nesterov momentum 0.9,
--     batch 128 (without their dropout: the trainer has no option for it).
--   DenseNet-BC-100-12 on CIFAR (Huang et al. 2017): 300 epochs, batch 64,
--     lr 0.1, / 10 at epochs 150 and 225, weight decay 1e-4, Nesterov.
--   SVHN: WRN-16-8 (Zagoruyko & Komodakis: train + extra, 160 epochs, lr
--     0.01, / 10 at 80 and 120, weight decay 5e-4, no augmentation).
--   ImageNet: ResNet-18 / ResNet-50 (He et al. 2016, as in torchvision's
--     reference): 90 epochs, batch 256, lr 0.1, / 10 at 30 and 60, weight
--     decay 1e-4, momentum 0.9.
--   CUB-200-2011, Stanford Cars, Adience: crlab has no ImageNet-pretrained
--     weights, so the ResNets train from scratch on 224x224 crops with the
--     ImageNet recipe, the learning rate scaled linearly with the batch
--     (0.1 x 64 / 256 = 0.025); from scratch these small datasets reach
--     far lower accuracies than the fine-tuned models of the literature.
-- Data folders: those data/README.md's scripts arrange, under $CRLAB_DATA
-- (default /data); a folder may move between invocations (--data may change
-- when a run resumes).
-- The whole suite is thousands of GPU-hours: run parts of it with --only
-- (e.g. --only 'cifar10/resnet20/') or on a cluster (suite.lua slurm).
local root = os.getenv('CRLAB_DATA') or '/data'
local he_cifar = {epochs = 164, batch = 128, lr = 0.1, momentum = 0.9, ['weight-decay'] = 1e-4,
                  schedule = 'multistep', milestones = '82,123', ['lr-gamma'] = 0.1}
local he_cifar_110 = {epochs = 164, batch = 128, lr = 0.1, momentum = 0.9, ['weight-decay'] = 1e-4,
                      schedule = 'multistep', milestones = '82,123', ['lr-gamma'] = 0.1, warmup = 1}
local wrn_cifar = {epochs = 200, batch = 128, lr = 0.1, momentum = 0.9, nesterov = true, ['weight-decay'] = 5e-4,
                   schedule = 'multistep', milestones = '60,120,160', ['lr-gamma'] = 0.2}
local densenet_cifar = {epochs = 300, batch = 64, lr = 0.1, momentum = 0.9, nesterov = true,
                        ['weight-decay'] = 1e-4, schedule = 'multistep', milestones = '150,225', ['lr-gamma'] = 0.1}
local wrn_svhn = {epochs = 160, batch = 128, lr = 0.01, momentum = 0.9, nesterov = true, ['weight-decay'] = 5e-4,
                  schedule = 'multistep', milestones = '80,120', ['lr-gamma'] = 0.1}
local imagenet = {epochs = 90, batch = 256, lr = 0.1, momentum = 0.9, ['weight-decay'] = 1e-4,
                  schedule = 'multistep', milestones = '30,60', ['lr-gamma'] = 0.1}
local scratch_224 = {epochs = 90, batch = 64, lr = 0.025, momentum = 0.9, ['weight-decay'] = 1e-4,
                     schedule = 'multistep', milestones = '30,60', ['lr-gamma'] = 0.1}

local cifar_models = {
  {name = 'resnet20', options = he_cifar},
  {name = 'resnet56', options = he_cifar},
  {name = 'resnet110', options = he_cifar_110},
  {name = 'wrn-28-10', options = wrn_cifar},
  {name = 'densenet-bc-100-12', options = densenet_cifar},
}

return {
  name = 'paper',
  seeds = {1, 2, 3},
  losses = {
    {name = 'ce'},
    {name = 'nllr'},
    {name = 'crl', alpha = 1.5, beta = 1},
    {name = 'focal', gamma = 2},
    {name = 'ce', smoothing = 0.1},
  },
  datasets = {
    {name = 'cifar10', options = {data = root .. '/cifar-10-batches-bin'}, models = cifar_models},
    {name = 'cifar100', options = {data = root .. '/cifar-100-binary'}, models = cifar_models},
    {name = 'svhn', options = {data = root .. '/svhn', extra = true}, models = {{name = 'wrn-16-8', options = wrn_svhn}}},
    {name = 'cub200', options = {data = root .. '/CUB_200_2011'}, models = {{name = 'resnet50', options = scratch_224}}},
    {name = 'cars', options = {data = root .. '/cars'}, models = {{name = 'resnet50', options = scratch_224}}},
    {name = 'adience', options = {data = root .. '/adience'}, folds = {0, 1, 2, 3, 4}, seeds = {1},
     models = {{name = 'resnet18', options = scratch_224}, {name = 'resnet50', options = scratch_224}}},
    {name = 'imagenet', options = {data = root .. '/imagenet'},
     models = {{name = 'resnet18', options = imagenet}, {name = 'resnet50', options = imagenet}}},
  },
}
