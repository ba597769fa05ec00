-- crlab.models: the architectures of the paper's experiments, built from
-- crlab.nn. Input channels, image size and class count are parameters:
--   crlab.models.build('resnet20', {channels = 3, classes = 10, size = 32})
-- Names: cnn (the small default for 28x28 data), resnet20/32/44/56/110 (He
-- et al. 2016, CIFAR: 16/32/64 channels, zero-padding shortcuts),
-- preresnet20..110 (pre-activation), wrn-D-K (Wide ResNet), densenet-bc-L-K
-- (DenseNet-BC), resnet18/34/50 (ImageNet: 7x7 stem, projection shortcuts).
local nn = require 'crlab.nn'

local M = {}

local function conv3(i, o, stride) return nn.Conv2d(i, o, 3, {stride = stride or 1, padding = 1, bias = false}) end
local function conv1(i, o, stride) return nn.Conv2d(i, o, 1, {stride = stride or 1, bias = false}) end
-- batch norm with the following ReLU fused into it
local function bnrelu(c) return nn.BatchNorm2d(c, {relu = true}) end

-- The default model for 28x28 grey images: two conv-BN-ReLU-pool stages
-- and a two-layer classifier (about 0.43 M parameters).
function M.cnn(o)
  local s = math.floor(math.floor(o.size / 2) / 2)
  return nn.Sequential(
    nn.Conv2d(o.channels, 32, 3, {padding = 1, bias = false}), bnrelu(32), nn.MaxPool2d(2),
    nn.Conv2d(32, 64, 3, {padding = 1, bias = false}), bnrelu(64), nn.MaxPool2d(2),
    nn.Flatten(), nn.Linear(64 * s * s, 128), nn.ReLU(true), nn.Linear(128, o.classes))
end

-- CIFAR ResNet basic block (option A shortcut).
local function basic_cifar(i, o, stride)
  local branch = nn.Sequential(conv3(i, o, stride), bnrelu(o), conv3(o, o), nn.BatchNorm2d(o))
  local shortcut = (stride ~= 1 or i ~= o) and nn.ShortcutPad(i, o, stride) or nil
  return nn.Sequential(nn.Residual(branch, shortcut), nn.ReLU(true))
end

-- Pre-activation block: BN-ReLU-conv twice, identity or padded shortcut.
local function preact_cifar(i, o, stride, dropout)
  local branch = nn.Sequential(bnrelu(i), conv3(i, o, stride), bnrelu(o))
  if dropout and dropout > 0 then branch:add(nn.Dropout(dropout)) end
  branch:add(conv3(o, o))
  return branch
end

function M.resnet_cifar(depth, o, preact)
  if (depth - 2) % 6 ~= 0 then error('resnet: CIFAR depth must be 6n+2 (20, 32, 44, 56, 110), got ' .. depth, 3) end
  local n = (depth - 2) / 6
  local model = nn.Sequential(conv3(o.channels, 16))
  if not preact then model:add(bnrelu(16)) end
  local inC = 16
  for stage, width in ipairs({16, 32, 64}) do
    for b = 1, n do
      local stride = (stage > 1 and b == 1) and 2 or 1
      if preact then
        local sc = (stride ~= 1 or inC ~= width) and nn.ShortcutPad(inC, width, stride) or nil
        model:add(nn.Residual(preact_cifar(inC, width, stride), sc))
      else
        model:add(basic_cifar(inC, width, stride))
      end
      inC = width
    end
  end
  if preact then model:add(bnrelu(64)) end
  return model:add(nn.GlobalAvgPool2d()):add(nn.Linear(64, o.classes))
end

-- Wide ResNet WRN-depth-k (Zagoruyko & Komodakis 2016): pre-activation
-- blocks, widths 16k/32k/64k, 1x1 projection where the shape changes.
function M.wrn(depth, k, o)
  if (depth - 4) % 6 ~= 0 then error('wrn: depth must be 6n+4 (e.g. 28), got ' .. depth, 3) end
  local n = (depth - 4) / 6
  local model = nn.Sequential(conv3(o.channels, 16))
  local inC = 16
  for stage, width in ipairs({16 * k, 32 * k, 64 * k}) do
    for b = 1, n do
      local stride = (stage > 1 and b == 1) and 2 or 1
      local sc = (stride ~= 1 or inC ~= width) and conv1(inC, width, stride) or nil
      model:add(nn.Residual(preact_cifar(inC, width, stride, o.dropout), sc))
      inC = width
    end
  end
  return model:add(bnrelu(inC)):add(nn.GlobalAvgPool2d()):add(nn.Linear(inC, o.classes))
end

-- DenseNet-BC (Huang et al. 2017): three dense blocks of bottleneck layers
-- (BN-ReLU-1x1 conv to 4k, BN-ReLU-3x3 conv to k), each layer's output
-- concatenated to its input; transitions halve channels and resolution.
function M.densenet_bc(depth, k, o)
  if (depth - 4) % 6 ~= 0 then error('densenet-bc: depth must be 6n+4 (e.g. 100), got ' .. depth, 3) end
  local n = (depth - 4) / 6
  local c = 2 * k
  local model = nn.Sequential(conv3(o.channels, c))
  for block = 1, 3 do
    for _ = 1, n do
      local layer = nn.Sequential(bnrelu(c), conv1(c, 4 * k), bnrelu(4 * k), conv3(4 * k, k))
      model:add(nn.Concat(2, nn.Identity(), layer))
      c = c + k
    end
    if block < 3 then
      local out = math.floor(c / 2)
      model:add(bnrelu(c)):add(conv1(c, out)):add(nn.AvgPool2d(2))
      c = out
    end
  end
  return model:add(bnrelu(c)):add(nn.GlobalAvgPool2d()):add(nn.Linear(c, o.classes))
end

-- ImageNet ResNets (He et al. 2016): basic blocks (18, 34) or bottlenecks
-- (50), projection shortcuts (1x1 conv + BN) where the shape changes.
local function basic(i, o, stride)
  local branch = nn.Sequential(conv3(i, o, stride), bnrelu(o), conv3(o, o), nn.BatchNorm2d(o))
  local sc = (stride ~= 1 or i ~= o) and nn.Sequential(conv1(i, o, stride), nn.BatchNorm2d(o)) or nil
  return nn.Sequential(nn.Residual(branch, sc), nn.ReLU(true)), o
end

local function bottleneck(i, w, stride)
  local o = 4 * w
  local branch = nn.Sequential(conv1(i, w), bnrelu(w), conv3(w, w, stride), bnrelu(w), conv1(w, o),
                               nn.BatchNorm2d(o))
  local sc = (stride ~= 1 or i ~= o) and nn.Sequential(conv1(i, o, stride), nn.BatchNorm2d(o)) or nil
  return nn.Sequential(nn.Residual(branch, sc), nn.ReLU(true)), o
end

function M.resnet_imagenet(depth, o)
  local cfg = ({[18] = {basic, {2, 2, 2, 2}}, [34] = {basic, {3, 4, 6, 3}}, [50] = {bottleneck, {3, 4, 6, 3}}})[depth]
  if not cfg then error('resnet: ImageNet depth must be 18, 34 or 50, got ' .. depth, 3) end
  local model = nn.Sequential(nn.Conv2d(o.channels, 64, 7, {stride = 2, padding = 3, bias = false}),
                              bnrelu(64), nn.MaxPool2d(3, {stride = 2, padding = 1}))
  local inC = 64
  for stage, width in ipairs({64, 128, 256, 512}) do
    for b = 1, cfg[2][stage] do
      local block
      block, inC = cfg[1](inC, width, (stage > 1 and b == 1) and 2 or 1)
      model:add(block)
    end
  end
  return model:add(nn.GlobalAvgPool2d()):add(nn.Linear(inC, o.classes))
end

M.names = {'cnn', 'resnet20', 'resnet32', 'resnet44', 'resnet56', 'resnet110', 'preresnet20', 'preresnet110',
           'wrn-28-10', 'wrn-16-4', 'densenet-bc-100-12', 'resnet18', 'resnet34', 'resnet50'}

-- opts: channels (default 3), classes (10), size (32), dropout (WRN).
function M.build(name, opts)
  local o = {channels = opts and opts.channels or 3, classes = opts and opts.classes or 10,
             size = opts and opts.size or 32, dropout = opts and opts.dropout}
  if name == 'cnn' then return M.cnn(o) end
  local d = name:match('^resnet(%d+)$')
  if d then
    d = tonumber(d)
    if d == 18 or d == 34 or d == 50 then return M.resnet_imagenet(d, o) end
    return M.resnet_cifar(d, o, false)
  end
  d = name:match('^preresnet(%d+)$')
  if d then return M.resnet_cifar(tonumber(d), o, true) end
  local depth, k = name:match('^wrn%-(%d+)%-(%d+)$')
  if depth then return M.wrn(tonumber(depth), tonumber(k), o) end
  depth, k = name:match('^densenet%-bc%-(%d+)%-(%d+)$')
  if depth then return M.densenet_bc(tonumber(depth), tonumber(k), o) end
  error("unknown model '" .. tostring(name) .. "' (known: " .. table.concat(M.names, ', ') ..
        '; resnetN for N = 6n+2, wrn-D-K, densenet-bc-L-K)', 2)
end

return M
