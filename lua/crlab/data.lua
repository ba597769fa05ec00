-- crlab.data: datasets as uint8 image tensors (N, C, H, W) with 0-based
-- labels, and a batch iterator that assembles augmented, normalised float
-- batches with one C call into reused buffers.
local ffi = require 'ffi'
local core = require 'crlab.core'
local T = require 'crlab.tensor'
local C, check = core.C, core.check

local M = {}

function M.readIdx(path)
  local t = T.new(C.CRL_UINT8, C.CRL_CPU, {0})
  check(C.crl_idx_read(t, path))
  return t
end

local function exists(path)
  local f = io.open(path, 'rb')
  if f then f:close() return true end
  return false
end

-- The first of name.gz / name that exists in dir.
local function find(dir, name)
  for _, cand in ipairs({dir .. '/' .. name .. '.gz', dir .. '/' .. name}) do
    if exists(cand) then return cand end
  end
  error(string.format("dataset: neither %s/%s.gz nor %s/%s exists", dir, name, dir, name), 3)
end

local function idx_split(dir, images_name, labels_name, classes)
  local ipath, lpath = find(dir, images_name), find(dir, labels_name)
  local images, labels = M.readIdx(ipath), M.readIdx(lpath)
  if images:dim() ~= 3 then
    error(string.format('dataset: %s holds a %d-dimensional idx array; images need 3 (N, H, W)', ipath,
                        images:dim()), 3)
  end
  if labels:dim() ~= 1 then
    error(string.format('dataset: %s holds a %d-dimensional idx array; labels need 1 (N)', lpath, labels:dim()), 3)
  end
  if images:size(1) ~= labels:size(1) then
    error(string.format('dataset: %s holds %d images but %s holds %d labels', ipath, images:size(1), lpath,
                        labels:size(1)), 3)
  end
  if labels:numel() > 0 and labels:max() >= classes then
    error(string.format('dataset: %s holds label %d, outside 0..%d', lpath, labels:max(), classes - 1), 3)
  end
  return {images = images:view(images:size(1), 1, images:size(2), images:size(3)), labels = labels,
          files = {ipath, lpath}}
end

M.FASHION_MNIST_CLASSES = {'T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt',
                           'Sneaker', 'Bag', 'Ankle boot'}

-- MNIST or Fashion-MNIST from a folder of idx files (gzipped or not).
function M.idxDataset(dir, classes)
  return {
    train = idx_split(dir, 'train-images-idx3-ubyte', 'train-labels-idx1-ubyte', #classes),
    test = idx_split(dir, 't10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte', #classes),
    classes = classes, channels = 1, size = 28,
  }
end

M.defaultDirs = {
  ['fashion-mnist'] = '/usr/share/datasets/fashion-mnist',
  mnist = '/usr/share/datasets/mnist',
}

function M.load(name, dir)
  dir = dir or M.defaultDirs[name]
  if name == 'fashion-mnist' then
    local d = M.idxDataset(dir, M.FASHION_MNIST_CLASSES)
    d.mean, d.std = {0.2860}, {0.3530}
    return d
  elseif name == 'mnist' then
    local d = M.idxDataset(dir, {'0', '1', '2', '3', '4', '5', '6', '7', '8', '9'})
    d.mean, d.std = {0.1307}, {0.3081}
    return d
  end
  error("dataset: unknown dataset '" .. tostring(name) .. "' (this build reads fashion-mnist and mnist)", 2)
end

-- Keeps the first n examples of a split (for quick runs and tests).
function M.subset(split, n)
  if n >= split.images:size(1) then return split end
  return {images = split.images:narrow(1, 1, n):contiguous(), labels = split.labels:narrow(1, 1, n):contiguous(),
          files = split.files}
end

---------------------------------------------------------------------------
-- Batches over a split: an epoch's order comes from randperm on the seeded
-- generator (shuffle = true) or is sequential; augmentation draws come from
-- the same generator, so a seed fixes everything.
local Batches = {}
Batches.__index = Batches

function M.batches(split, opts)
  local self = setmetatable({split = split}, Batches)
  self.batch = opts.batch or 128
  self.shuffle = opts.shuffle ~= false
  self.dropLast = opts.dropLast or false
  local p = ffi.new('crl_augment_params')
  p.pad = opts.crop or 0
  p.reflect = opts.reflect and 1 or 0
  p.hflip = opts.flip and 1 or 0
  local mean, std = opts.mean or {0}, opts.std or {1}
  for c = 1, #mean do p.mean[c - 1], p.std[c - 1] = mean[c], std[c] end
  for c = #mean + 1, 4 do p.std[c - 1] = 1 end
  self.params = p
  self.n = split.images:size(1)
  self.order = T.new(C.CRL_INT32, C.CRL_CPU, {self.n})
  self.x = T.new(C.CRL_FLOAT32, C.CRL_CPU, {0})
  self.y = T.new(C.CRL_INT32, C.CRL_CPU, {0})
  self.idx = T.new(C.CRL_INT32, C.CRL_CPU, {0})
  return self
end

function Batches:count()
  if self.dropLast then return math.floor(self.n / self.batch) end
  return math.ceil(self.n / self.batch)
end

-- Iterates (i, x, y) over one epoch; x and y are reused buffers.
function Batches:epoch()
  if self.shuffle then
    check(C.crl_tensor_randperm(self.order, nil))
  else
    local p = ffi.cast('int32_t *', C.crl_tensor_data(self.order))
    for i = 0, self.n - 1 do p[i] = i end
  end
  local count, i = self:count(), 0
  return function()
    i = i + 1
    if i > count then return nil end
    local first = (i - 1) * self.batch
    local len = math.min(self.batch, self.n - first)
    check(C.crl_tensor_narrow(self.idx, self.order, 0, first, len))
    check(C.crl_batch_assemble(self.x, self.y, self.split.images, self.split.labels, self.idx, self.params, nil))
    return i, self.x, self.y
  end
end

return M
