-- crlab.data: the datasets of the paper's suite, read in their official
-- formats, and the threaded loader that feeds them to training.
--
--   local ds = crlab.data.load('cifar10', '/data/cifar-10-batches-bin')
--   ds.classes, ds.train:size(), ds.train:get(1)   -- image uint8 (C, H, W), 0-based label
--   local loader = crlab.data.loader(ds.train, {batch = 128, transform = ds.recipe.train, threads = 2})
--   for i, x, y in loader:epoch() do ... end        -- x (B, C, H, W) float32, y (B) int32
--
-- A split is either in memory (uint8 images (N, C, H, W)) or a list of
-- image files (PNG or JPEG, decoded by the loader's threads); both carry
-- int32 labels (N), 0-based.
local ffi = require 'ffi'
local core = require 'crlab.core'
local T = require 'crlab.tensor'
local Tr = require 'crlab.transforms'
local image = require 'crlab.image'
local C, check = core.C, core.check

local M = {}

local function fail(msg) error('dataset: ' .. msg, 0) end

local function exists(path)
  local f = io.open(path, 'rb')
  if f then f:close() return true end
  return false
end

-- the names of a uint8 tensor of names joined by '\n' (as the C readers give them)
local function split_names(t)
  local s = t:numel() > 0 and ffi.string(C.crl_tensor_data(t), t:numel()) or ''
  local out = {}
  for name in s:gmatch('[^\n]+') do out[#out + 1] = name end
  return out
end

local function list_dir(path, kind)
  local t = T.new(C.CRL_UINT8, C.CRL_CPU, {0})
  check(C.crl_dir_list(t, path, kind))
  return split_names(t)
end

-- path, when it exists; otherwise an error pointing to the layout
local function need_layout(path)
  if not exists(path) then fail('missing ' .. path .. ' (see data/README.md for the layout)') end
  return path
end

-- path, when it exists; otherwise an error saying which line (where) names it
local function need_file(path, where)
  if not exists(path) then fail(string.format('%s names %s, which does not exist', where, path)) end
  return path
end

local function lines(path)
  local f = io.open(path, 'r')
  if not f then fail('cannot open ' .. path) end
  local out = {}
  for l in f:lines() do out[#out + 1] = l:gsub('\r$', '') end
  f:close()
  return out
end

---------------------------------------------------------------------------
-- splits

local Split = {}
Split.__index = Split

local function memory_split(images, labels, files)
  if labels.dtype ~= C.CRL_INT32 then labels = labels:int() end
  return setmetatable({images = images, labels = labels, files = files}, Split)
end

-- image files with int32 labels (N) and, to crop to, float32 boxes (N, 4) (x, y, w, h)
local function tensor_split(paths, labels, boxes)
  return setmetatable({paths = paths, labels = labels, boxes = boxes}, Split)
end

local function file_split(paths, labels, boxes)
  local lab = T.new(C.CRL_INT32, C.CRL_CPU, {#paths})
  local p = ffi.cast('int32_t *', C.crl_tensor_data(lab))
  for i = 1, #paths do p[i - 1] = labels[i] end
  local b
  if boxes then
    b = T.new(C.CRL_FLOAT32, C.CRL_CPU, {#paths, 4})
    local q = ffi.cast('float *', C.crl_tensor_data(b))
    for i = 1, #paths do for k = 1, 4 do q[(i - 1) * 4 + k - 1] = boxes[i][k] end end
  end
  return tensor_split(paths, lab, b)
end

-- A split of images held in memory, for datasets built in Lua (an
-- experiment's `dataset = {train = data.split(x, y), test = ...}`):
-- images uint8 (N, C, H, W), labels (N) of 0-based classes (int32, or any
-- integer tensor or a Lua table of integers).
function M.split(images, labels)
  if not T.isTensor(images) or images.dtype ~= C.CRL_UINT8 or images:dim() ~= 4 then
    fail('split: images must be a uint8 (N, C, H, W) tensor, got ' ..
         (T.isTensor(images) and ffi.string(C.crl_dtype_name(images.dtype)) .. ' ' .. tostring(images:size()) or
          type(images)))
  end
  if type(labels) == 'table' and not T.isTensor(labels) then labels = T.tensor(labels, 'int32') end
  if not T.isTensor(labels) or labels:dim() ~= 1 or labels:size(1) ~= images:size(1) then
    fail(string.format('split: labels must be a (%d) tensor or table of 0-based classes, one per image, got %s',
                       images:size(1), T.isTensor(labels) and tostring(labels:size()) or type(labels)))
  end
  return memory_split(images:contiguous(), labels:contiguous())
end

function Split:size() return self.labels:size(1) end

-- Sample i (1-based): the image as uint8 (C, H, W) and its 0-based label.
function Split:get(i, channels)
  if i < 1 or i > self:size() then fail('sample ' .. i .. ' is outside 1..' .. self:size()) end
  local label = self.labels[i]
  if self.images then return self.images[i], label end
  local img = image.load(self.paths[i], channels)
  if self.boxes then
    local b = self.boxes[i]
    local x0, y0 = math.max(0, math.floor(b[1])), math.max(0, math.floor(b[2]))
    local bw = math.min(math.floor(b[3] + 0.5), img:size(3) - x0)
    local bh = math.min(math.floor(b[4] + 0.5), img:size(2) - y0)
    img = img:narrow(2, y0 + 1, math.max(1, bh)):narrow(3, x0 + 1, math.max(1, bw)):contiguous()
  end
  return img, label
end

-- The first n samples (for quick runs and tests).
function Split:head(n)
  if n >= self:size() then return self end
  if self.images then
    return memory_split(self.images:narrow(1, 1, n):contiguous(), self.labels:narrow(1, 1, n):contiguous(), self.files)
  end
  local paths, labels, boxes = {}, {}, self.boxes and {} or nil
  for i = 1, n do
    paths[i], labels[i] = self.paths[i], self.labels[i]
    if boxes then boxes[i] = self.boxes[i]:totable() end
  end
  return file_split(paths, labels, boxes)
end


---------------------------------------------------------------------------
-- idx: MNIST, Fashion-MNIST

function M.readIdx(path)
  local t = T.new(C.CRL_UINT8, C.CRL_CPU, {0})
  check(C.crl_idx_read(t, path))
  return t
end

local function find(dir, name)
  for _, cand in ipairs({dir .. '/' .. name .. '.gz', dir .. '/' .. name}) do
    if exists(cand) then return cand end
  end
  fail(string.format('neither %s/%s.gz nor %s/%s exists', dir, name, dir, name))
end

local function idx_split(dir, images_name, labels_name, classes)
  local ipath, lpath = find(dir, images_name), find(dir, labels_name)
  local images, labels = M.readIdx(ipath), M.readIdx(lpath)
  if images:dim() ~= 3 then
    fail(string.format('%s holds a %d-dimensional idx array; images need 3 (N, H, W)', ipath, images:dim()))
  end
  if labels:dim() ~= 1 then
    fail(string.format('%s holds a %d-dimensional idx array; labels need 1 (N)', lpath, labels:dim()))
  end
  if images:size(1) ~= labels:size(1) then
    fail(string.format('%s holds %d images but %s holds %d labels', ipath, images:size(1), lpath, labels:size(1)))
  end
  if labels:numel() > 0 and labels:max() >= classes then
    fail(string.format('%s holds label %d, outside 0..%d', lpath, labels:max(), classes - 1))
  end
  return memory_split(images:view(images:size(1), 1, images:size(2), images:size(3)), labels, {ipath, lpath})
end

M.FASHION_MNIST_CLASSES = {'T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt',
                           'Sneaker', 'Bag', 'Ankle boot'}

function M.idxDataset(dir, classes)
  return {train = idx_split(dir, 'train-images-idx3-ubyte', 'train-labels-idx1-ubyte', #classes),
          test = idx_split(dir, 't10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte', #classes),
          classes = classes, channels = 1, size = 28}
end

---------------------------------------------------------------------------
-- CIFAR-10 / CIFAR-100 (binary version)

local function cifar_files(dir, names)
  local out = {}
  for i, n in ipairs(names) do
    out[i] = need_layout(dir .. '/' .. n)
  end
  return out
end

local function read_cifar(paths, label_bytes, which)
  local parts_i, parts_l, total = {}, {}, 0
  for i, p in ipairs(paths) do
    parts_i[i] = T.new(C.CRL_UINT8, C.CRL_CPU, {0})
    parts_l[i] = T.new(C.CRL_INT32, C.CRL_CPU, {0})
    check(C.crl_cifar_read(parts_i[i], parts_l[i], p, label_bytes, which))
    total = total + parts_l[i]:size(1)
  end
  if #paths == 1 then return memory_split(parts_i[1], parts_l[1], paths) end
  local images = T.new(C.CRL_UINT8, C.CRL_CPU, {total, 3, 32, 32})
  local labels = T.new(C.CRL_INT32, C.CRL_CPU, {total})
  local off = 0
  for i = 1, #paths do
    local n = parts_l[i]:size(1)
    images:narrow(1, off + 1, n):copy(parts_i[i])
    labels:narrow(1, off + 1, n):copy(parts_l[i])
    off = off + n
  end
  return memory_split(images, labels, paths)
end

local function class_names(path, count)
  local out = {}
  if exists(path) then
    for _, l in ipairs(lines(path)) do if l:find('%S') then out[#out + 1] = l end end
  end
  if #out ~= count then
    out = {}
    for i = 1, count do out[i] = tostring(i - 1) end
  end
  return out
end

function M.cifar10(dir)
  local train = {}
  for i = 1, 5 do train[i] = 'data_batch_' .. i .. '.bin' end
  return {train = read_cifar(cifar_files(dir, train), 1, 0), test = read_cifar(cifar_files(dir, {'test_batch.bin'}), 1, 0),
          classes = class_names(dir .. '/batches.meta.txt', 10), channels = 3, size = 32}
end

function M.cifar100(dir, opts)
  local which = opts and opts.coarse and 1 or 0
  return {train = read_cifar(cifar_files(dir, {'train.bin'}), 2, which),
          test = read_cifar(cifar_files(dir, {'test.bin'}), 2, which),
          classes = class_names(dir .. (which == 1 and '/coarse_label_names.txt' or '/fine_label_names.txt'),
                                which == 1 and 20 or 100), channels = 3, size = 32}
end

---------------------------------------------------------------------------
-- SVHN format 2

local function read_svhn(path)
  local images, labels = T.new(C.CRL_UINT8, C.CRL_CPU, {0}), T.new(C.CRL_INT32, C.CRL_CPU, {0})
  check(C.crl_svhn_read(images, labels, need_layout(path)))
  return memory_split(images, labels, {path})
end

function M.svhn(dir, opts)
  local train = read_svhn(dir .. '/train_32x32.mat')
  if opts and opts.extra then
    local extra = read_svhn(dir .. '/extra_32x32.mat')
    local n1, n2 = train:size(), extra:size()
    local images = T.new(C.CRL_UINT8, C.CRL_CPU, {n1 + n2, 3, 32, 32})
    local labels = T.new(C.CRL_INT32, C.CRL_CPU, {n1 + n2})
    images:narrow(1, 1, n1):copy(train.images)
    images:narrow(1, n1 + 1, n2):copy(extra.images)
    labels:narrow(1, 1, n1):copy(train.labels)
    labels:narrow(1, n1 + 1, n2):copy(extra.labels)
    train = memory_split(images, labels, {train.files[1], extra.files[1]})
  end
  return {train = train, test = read_svhn(dir .. '/test_32x32.mat'),
          classes = {'0', '1', '2', '3', '4', '5', '6', '7', '8', '9'}, channels = 3, size = 32}
end

---------------------------------------------------------------------------
-- CUB-200-2011

-- "<id> <value...>" lines into a table id -> value words
-- The most classes a dataset's label files may name (ImageNet-21k has
-- 21841); a larger class number is damage, not a dataset.
local MAX_CLASSES = 100000

local function id_table(path)
  local out = {}
  for n, l in ipairs(lines(path)) do
    if l:find('%S') then
      local id, rest = l:match('^%s*(%d+)%s+(.-)%s*$')
      if not id then fail(string.format('%s line %d is not "<id> <value>": %q', path, n, l)) end
      out[tonumber(id)] = {rest = rest, line = n}
    end
  end
  return out
end

function M.cub200(dir, opts)
  local images = id_table(dir .. '/images.txt')
  local labels = id_table(dir .. '/image_class_labels.txt')
  local split = id_table(dir .. '/train_test_split.txt')
  local boxes = opts and opts.bbox and id_table(dir .. '/bounding_boxes.txt') or nil
  local classes = {}
  if exists(dir .. '/classes.txt') then
    for id, v in pairs(id_table(dir .. '/classes.txt')) do classes[id] = v.rest end
  end
  local ids = {}
  for id in pairs(images) do ids[#ids + 1] = id end
  table.sort(ids)
  if #ids == 0 then fail(dir .. '/images.txt lists no images') end
  local parts = {train = {{}, {}, boxes and {} or nil}, test = {{}, {}, boxes and {} or nil}}
  local maxc = 0
  for _, id in ipairs(ids) do
    local path = need_file(dir .. '/images/' .. images[id].rest,
                           string.format('%s/images.txt line %d', dir, images[id].line))
    local lab = labels[id] and tonumber(labels[id].rest)
    if not lab then fail(string.format('%s/image_class_labels.txt has no class for image %d', dir, id)) end
    if lab % 1 ~= 0 or lab < 1 or lab > MAX_CLASSES then
      fail(string.format('%s/image_class_labels.txt line %d: class %s of image %d is not an integer in 1..%d', dir,
                         labels[id].line, labels[id].rest, id, MAX_CLASSES))
    end
    local sp = split[id] and split[id].rest
    if sp ~= '0' and sp ~= '1' then fail(string.format('%s/train_test_split.txt has no 0/1 for image %d', dir, id)) end
    local p = parts[sp == '1' and 'train' or 'test']
    p[1][#p[1] + 1] = path
    p[2][#p[2] + 1] = lab - 1 -- classes are numbered from 1 in the files
    maxc = math.max(maxc, lab)
    if boxes then
      local b = boxes[id]
      if not b then fail(string.format('%s/bounding_boxes.txt has no box for image %d', dir, id)) end
      local v = {}
      for num in b.rest:gmatch('%S+') do v[#v + 1] = tonumber(num) or false end
      if #v ~= 4 or not (v[1] and v[2] and v[3] and v[4]) then
        fail(string.format('%s/bounding_boxes.txt line %d is not "<id> <x> <y> <width> <height>": %q', dir, b.line,
                           id .. ' ' .. b.rest))
      end
      p[3][#p[3] + 1] = v
    end
  end
  local names = {}
  for i = 1, maxc do names[i] = classes[i] or tostring(i - 1) end
  return {train = file_split(parts.train[1], parts.train[2], parts.train[3]),
          test = file_split(parts.test[1], parts.test[2], parts.test[3]), classes = names, channels = 3, size = 224}
end

---------------------------------------------------------------------------
-- Stanford Cars: cars_train/, cars_test/, devkit/cars_meta.mat,
-- devkit/cars_train_annos.mat, cars_test_annos_withlabels.mat (released
-- after the devkit, whose devkit/cars_test_annos.mat has no classes; read
-- from the root or from devkit/). The .mat files are read in C.

local function cars_split(dir, folder, annos, classes, bbox)
  local labels, boxes = T.new(C.CRL_INT32, C.CRL_CPU, {0}), T.new(C.CRL_FLOAT32, C.CRL_CPU, {0})
  local names = T.new(C.CRL_UINT8, C.CRL_CPU, {0})
  check(C.crl_cars_annos_read(labels, boxes, names, need_layout(annos), classes))
  local paths = {}
  for i, name in ipairs(split_names(names)) do
    paths[i] = need_file(dir .. '/' .. folder .. '/' .. name, string.format('%s: annotations(%d).fname', annos, i))
  end
  return tensor_split(paths, labels, bbox and boxes or nil)
end

function M.cars(dir, opts)
  local meta = T.new(C.CRL_UINT8, C.CRL_CPU, {0})
  check(C.crl_cars_meta_read(meta, need_layout(dir .. '/devkit/cars_meta.mat')))
  local classes = split_names(meta)
  local test = dir .. '/cars_test_annos_withlabels.mat'
  if not exists(test) and exists(dir .. '/devkit/cars_test_annos_withlabels.mat') then
    test = dir .. '/devkit/cars_test_annos_withlabels.mat'
  end
  if not exists(test) then
    fail(string.format('missing %s (nor in %s/devkit/): the test labels, released apart from the devkit, whose ' ..
                       'cars_test_annos.mat has none (see data/README.md)', test, dir))
  end
  local bbox = opts and opts.bbox
  return {train = cars_split(dir, 'cars_train', dir .. '/devkit/cars_train_annos.mat', #classes, bbox),
          test = cars_split(dir, 'cars_test', test, #classes, bbox), classes = classes, channels = 3, size = 224}
end

---------------------------------------------------------------------------
-- Adience: aligned faces (aligned.tar.gz or faces.tar.gz), 8 age groups, 5 folds

M.ADIENCE_AGES = {'(0, 2)', '(4, 6)', '(8, 12)', '(15, 20)', '(25, 32)', '(38, 43)', '(48, 53)', '(60, 100)'}

-- Test on fold `fold` (0-4), train on the other four. Rows whose age is
-- not one of the 8 groups (missing or a single number) are left out and
-- counted in ds.skipped.
function M.adience(dir, opts)
  local fold = opts and opts.fold or 0
  if fold < 0 or fold > 4 or fold % 1 ~= 0 then fail('adience: fold must be 0..4, got ' .. tostring(fold)) end
  -- the two official archives of the faces: aligned.tar.gz unpacks to
  -- aligned/<user>/landmark_aligned_face.*, faces.tar.gz to
  -- faces/<user>/coarse_tilt_aligned_face.*; the first is read when both are there
  local subdirs = {}
  for _, name in ipairs(list_dir(dir, 1)) do subdirs[name] = true end
  local layout = subdirs.aligned and 'aligned/%s/landmark_aligned_face.%s.%s' or
                 subdirs.faces and 'faces/%s/coarse_tilt_aligned_face.%s.%s'
  if not layout then
    fail(dir .. " holds neither 'aligned/' (aligned.tar.gz) nor 'faces/' (faces.tar.gz) of the Adience faces")
  end
  local group = {}
  for i, a in ipairs(M.ADIENCE_AGES) do group[a] = i - 1 end
  local parts = {train = {{}, {}}, test = {{}, {}}}
  local skipped = 0
  for f = 0, 4 do
    local path = dir .. '/fold_' .. f .. '_data.txt'
    local ls = lines(path)
    local header = ls[1] or ''
    if not header:find('user_id') then fail(path .. ' does not start with the Adience header line') end
    for n = 2, #ls do
      local l = ls[n]
      if l:find('%S') then
        local cols = {}
        for v in (l .. '\t'):gmatch('([^\t]*)\t') do cols[#cols + 1] = v end
        local user, orig, face, age = cols[1], cols[2], cols[3], cols[4]
        if not (user and orig and face and age) then fail(string.format('%s line %d has too few columns', path, n)) end
        local g = group[age]
        if g then
          local img = need_file(dir .. '/' .. string.format(layout, user, face, orig), path .. ' line ' .. n)
          local p = parts[f == fold and 'test' or 'train']
          p[1][#p[1] + 1] = img
          p[2][#p[2] + 1] = g
        else
          skipped = skipped + 1
        end
      end
    end
  end
  return {train = file_split(parts.train[1], parts.train[2]), test = file_split(parts.test[1], parts.test[2]),
          classes = M.ADIENCE_AGES, channels = 3, size = 224, skipped = skipped, fold = fold,
          ordinal = true} -- the age groups are ordered: the trainer reports one-off accuracy
end

---------------------------------------------------------------------------
-- image folders: ImageNet (train/<wnid>/, val/<wnid>/) and any root/<class>/

local IMAGE_EXT = {png = true, jpg = true, jpeg = true}

local function folder_split(root, classes)
  local paths, labels = {}, {}
  for ci, cname in ipairs(classes) do
    local dir = root .. '/' .. cname
    for _, f in ipairs(list_dir(dir, 2)) do
      local ext = f:match('%.([^.]+)$')
      if ext and IMAGE_EXT[ext:lower()] then
        paths[#paths + 1] = dir .. '/' .. f
        labels[#labels + 1] = ci - 1
      end
    end
  end
  if #paths == 0 then fail(root .. ' holds no PNG or JPEG images under its class folders') end
  return file_split(paths, labels)
end

-- One folder per class (sorted by name), images inside.
function M.folder(root)
  local classes = list_dir(root, 1)
  if #classes == 0 then fail(root .. ' has no class folders') end
  return {data = folder_split(root, classes), classes = classes, channels = 3, size = 224}
end

function M.imagenet(dir)
  local classes = list_dir(dir .. '/train', 1)
  if #classes == 0 then fail(dir .. '/train has no class folders (expected train/<wnid>/*.JPEG)') end
  local val = list_dir(dir .. '/val', 1)
  if table.concat(val, ',') ~= table.concat(classes, ',') then
    fail(string.format('%s/val has %d class folders, %s/train has %d: they must match (val/<wnid>/*.JPEG)', dir,
                       #val, dir, #classes))
  end
  return {train = folder_split(dir .. '/train', classes), test = folder_split(dir .. '/val', classes),
          classes = classes, channels = 3, size = 224}
end

---------------------------------------------------------------------------
-- by name, with each dataset's recipe (the augmentation of the paper's runs)

M.defaultDirs = {
  ['fashion-mnist'] = '/usr/share/datasets/fashion-mnist',
  mnist = '/usr/share/datasets/mnist',
}

M.IMAGENET_MEAN, M.IMAGENET_STD = {0.485, 0.456, 0.406}, {0.229, 0.224, 0.225}

local function small_recipe(mean, std, crop, flip, size)
  local train = {}
  if crop and crop > 0 then train[#train + 1] = Tr.randomCrop(size, {pad = crop}) end
  if flip then train[#train + 1] = Tr.hflip() end
  train[#train + 1] = Tr.normalize(mean, std)
  return {train = Tr.compose(train), test = Tr.compose{Tr.normalize(mean, std)}}
end

local function imagenet_recipe(size)
  size = size or 224
  return {train = Tr.compose{Tr.randomResizedCrop(size), Tr.hflip(),
                             Tr.colorJitter{brightness = 0.4, contrast = 0.4, saturation = 0.4}, Tr.lighting{alphastd = 0.1},
                             Tr.normalize(M.IMAGENET_MEAN, M.IMAGENET_STD)},
          test = Tr.compose{Tr.resize(math.floor(size * 256 / 224)), Tr.centerCrop(size),
                            Tr.normalize(M.IMAGENET_MEAN, M.IMAGENET_STD)}}
end

M.names = {'fashion-mnist', 'mnist', 'cifar10', 'cifar100', 'svhn', 'cub200', 'cars', 'adience', 'imagenet', 'folder'}

-- the datasets of image files of any size (M[name]), with ImageNet's recipe
local image_datasets = {cub200 = true, cars = true, adience = true, imagenet = true}

-- opts: coarse (cifar100), extra (svhn), bbox (cub200, cars), fold (adience)
function M.load(name, dir, opts)
  opts = opts or {}
  dir = dir or M.defaultDirs[name]
  if dir == nil then fail("give the folder of '" .. tostring(name) .. "' with --data (see data/README.md)") end
  local d
  if name == 'fashion-mnist' or name == 'mnist' then
    d = M.idxDataset(dir, name == 'mnist' and {'0', '1', '2', '3', '4', '5', '6', '7', '8', '9'} or M.FASHION_MNIST_CLASSES)
    d.mean, d.std = name == 'mnist' and {0.1307} or {0.2860}, name == 'mnist' and {0.3081} or {0.3530}
    d.recipe = small_recipe(d.mean, d.std, opts.crop, opts.flip, 28)
  elseif name == 'cifar10' or name == 'cifar100' then
    d = name == 'cifar10' and M.cifar10(dir) or M.cifar100(dir, opts)
    d.mean = name == 'cifar10' and {0.4914, 0.4822, 0.4465} or {0.5071, 0.4865, 0.4409}
    d.std = name == 'cifar10' and {0.2470, 0.2435, 0.2616} or {0.2673, 0.2564, 0.2762}
    d.recipe = small_recipe(d.mean, d.std, opts.crop or 4, opts.flip ~= false, 32)
  elseif name == 'svhn' then
    d = M.svhn(dir, opts)
    d.mean, d.std = {0.4377, 0.4438, 0.4728}, {0.1980, 0.2010, 0.1970}
    d.recipe = small_recipe(d.mean, d.std, opts.crop, opts.flip, 32)
  elseif image_datasets[name] then
    d = M[name](dir, opts)
    d.recipe = imagenet_recipe(opts.size)
  elseif name == 'folder' then
    local f = M.folder(dir)
    d = {train = f.data, test = f.data, classes = f.classes, channels = 3, size = 224, recipe = imagenet_recipe(opts.size)}
  else
    fail("unknown dataset '" .. tostring(name) .. "' (" .. table.concat(M.names, ', ') .. ')')
  end
  d.name = name
  return d
end

---------------------------------------------------------------------------
-- the threaded loader

local Loader = {}
Loader.__index = Loader

-- opts: batch (128), transform (a crlab.transforms pipeline), shuffle
-- (true), dropLast (false), threads (2), prefetch (2 * threads + 1),
-- skipBad (false: a corrupt image is an error naming the file), channels.
function M.loader(split, opts)
  opts = opts or {}
  local transform = opts.transform or Tr.compose{}
  local channels = opts.channels or (split.images and split.images:size(2)) or 3
  local h, w
  if split.images then
    h, w = transform:outputSize(split.images:size(3), split.images:size(4))
  else
    h, w = transform:outputSize(nil, nil)
  end
  if not h then
    error('crlab.data.loader: the transform pipeline must end in a fixed size (a crop or resize{h, w}) for ' ..
          'images of different sizes', 2)
  end
  local threads = opts.threads or 2
  local cfg = ffi.new('crl_loader_config')
  cfg.images = split.images
  local joined
  if split.paths then
    joined = table.concat(split.paths, '\n')
    cfg.paths = joined
  end
  cfg.labels = split.labels
  cfg.boxes = split.boxes
  cfg.transforms = transform.c
  cfg.ntransforms = transform.n
  cfg.channels, cfg.out_h, cfg.out_w = channels, h, w
  cfg.batch = opts.batch or 128
  cfg.shuffle = opts.shuffle == false and 0 or 1
  cfg.drop_last = opts.dropLast and 1 or 0
  cfg.threads = threads
  cfg.prefetch = opts.prefetch or (2 * threads + 1)
  cfg.skip_bad = opts.skipBad and 1 or 0
  local l = C.crl_loader_new(cfg)
  if l == nil then error(core.last_error(), 2) end
  l = ffi.gc(l, C.crl_loader_free)
  local self = setmetatable({l = l, split = split, transform = transform, batch = cfg.batch,
                             x = T.new(C.CRL_FLOAT32, C.CRL_CPU, {0}), y = T.new(C.CRL_INT32, C.CRL_CPU, {0}),
                             done = ffi.new('int[1]')}, Loader)
  return self
end

function Loader:count() return tonumber(C.crl_loader_batches(self.l)) end
function Loader:skipped() return tonumber(C.crl_loader_skipped(self.l)) end

-- Iterates (i, x, y) over one epoch; x and y are views of the loader's
-- ring buffers, valid until the next iteration.
function Loader:epoch()
  check(C.crl_loader_start(self.l, nil))
  local i = 0
  return function()
    check(C.crl_loader_next(self.l, self.x, self.y, self.done))
    if self.done[0] == 1 then return nil end
    i = i + 1
    return i, self.x, self.y
  end
end

-- Stops the worker threads now (otherwise the garbage collector does).
function Loader:close()
  if self.l ~= nil then
    C.crl_loader_free(ffi.gc(self.l, nil))
    self.l = nil
  end
end

return M
