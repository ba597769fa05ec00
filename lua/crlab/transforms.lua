-- crlab.transforms: augmentation as a composable pipeline of C kernels.
--   local T = crlab.transforms
--   local train = T.compose{T.randomCrop(32, {pad = 4}), T.hflip(), T.normalize(mean, std)}
--   local x = train:apply(img, seed, counter)   -- uint8 (C, H, W) -> float32
-- Loaders run the same pipeline in their worker threads. Every draw comes
-- from the seeded generator, per sample, so a seed fixes every augmented
-- sample whatever the number of threads.
local ffi = require 'ffi'
local core = require 'crlab.core'
local Tn = require 'crlab.tensor'
local C, check = core.C, core.check

local M = {}

local function spec(kind, fields)
  local t = {kind = kind}
  for k, v in pairs(fields or {}) do t[k] = v end
  return t
end

local function hw(size)
  if type(size) == 'table' then return size[1], size[2] end
  return size, size
end

-- Random crop of size (h, w) after padding by pad (zeros, or reflect = true).
function M.randomCrop(size, opts)
  opts = opts or {}
  local h, w = hw(size)
  return spec(C.CRL_T_RANDOM_CROP, {h = h, w = w, pad = opts.pad or 0, reflect = opts.reflect and 1 or 0,
                                    name = string.format('randomCrop(%dx%d, pad %d%s)', h, w, opts.pad or 0,
                                                         opts.reflect and ', reflect' or '')})
end

function M.centerCrop(size)
  local h, w = hw(size)
  return spec(C.CRL_T_CENTER_CROP, {h = h, w = w, name = string.format('centerCrop(%dx%d)', h, w)})
end

-- resize(256): the shorter side to 256, aspect kept; resize{h, w}: exactly.
-- Bilinear, antialiased when shrinking.
function M.resize(size)
  if type(size) == 'table' then
    return spec(C.CRL_T_RESIZE, {h = size[1], w = size[2], name = string.format('resize(%dx%d)', size[1], size[2])})
  end
  return spec(C.CRL_T_RESIZE, {h = size, w = 0, name = string.format('resize(shorter side %d)', size)})
end

-- The Inception crop: a random area fraction in scale and aspect ratio in
-- ratio, resized to size (torchvision's RandomResizedCrop).
function M.randomResizedCrop(size, opts)
  opts = opts or {}
  local h, w = hw(size)
  local scale, ratio = opts.scale or {0.08, 1}, opts.ratio or {3 / 4, 4 / 3}
  return spec(C.CRL_T_RANDOM_RESIZED_CROP, {h = h, w = w, scale = scale, ratio = ratio,
              name = string.format('randomResizedCrop(%dx%d, scale %g-%g, ratio %.3g-%.3g)', h, w, scale[1],
                                   scale[2], ratio[1], ratio[2])})
end

function M.hflip(p)
  return spec(C.CRL_T_HFLIP, {p = p or 0.5, name = string.format('hflip(p %g)', p or 0.5)})
end

-- Brightness, contrast and saturation factors drawn from [1 - s, 1 + s].
function M.colorJitter(opts)
  opts = opts or {}
  return spec(C.CRL_T_COLOR_JITTER, {brightness = opts.brightness or 0, contrast = opts.contrast or 0,
              saturation = opts.saturation or 0, name = string.format('colorJitter(%g, %g, %g)',
              opts.brightness or 0, opts.contrast or 0, opts.saturation or 0)})
end

-- AlexNet-style PCA lighting noise; the defaults are the ImageNet
-- eigenvalues and eigenvectors used by fb.resnet.torch.
M.IMAGENET_EIGVAL = {0.2175, 0.0188, 0.0045}
M.IMAGENET_EIGVEC = {-0.5675, 0.7192, 0.4009, -0.5808, -0.0045, -0.8140, -0.5836, -0.6948, 0.4203}
function M.lighting(opts)
  opts = opts or {}
  return spec(C.CRL_T_LIGHTING, {alphastd = opts.alphastd or 0.1, eigval = opts.eigval or M.IMAGENET_EIGVAL,
              eigvec = opts.eigvec or M.IMAGENET_EIGVEC, name = 'lighting(' .. (opts.alphastd or 0.1) .. ')'})
end

-- Cutout (DeVries & Taylor 2017): a size x size square set to 0; put it
-- after normalize to fill with the mean, as the paper does.
function M.cutout(size)
  return spec(C.CRL_T_CUTOUT, {size = size, name = 'cutout(' .. size .. ')'})
end

function M.normalize(mean, std)
  return spec(C.CRL_T_NORMALIZE, {mean = mean, std = std, name = 'normalize(mean {' .. table.concat(mean, ', ') ..
              '}, std {' .. table.concat(std, ', ') .. '})'})
end

---------------------------------------------------------------------------
local Pipeline = {}
Pipeline.__index = Pipeline

local function to_c(list)
  local arr = ffi.new('crl_transform[?]', math.max(#list, 1))
  for i, t in ipairs(list) do
    local c = arr[i - 1]
    c.kind = t.kind
    c.h, c.w, c.pad, c.reflect, c.size = t.h or 0, t.w or 0, t.pad or 0, t.reflect or 0, t.size or 0
    c.p = t.p or 0
    if t.scale then c.scale[0], c.scale[1] = t.scale[1], t.scale[2] end
    if t.ratio then c.ratio[0], c.ratio[1] = t.ratio[1], t.ratio[2] end
    c.brightness, c.contrast, c.saturation = t.brightness or 0, t.contrast or 0, t.saturation or 0
    c.alphastd = t.alphastd or 0
    for k = 1, 3 do c.eigval[k - 1] = t.eigval and t.eigval[k] or 0 end
    for k = 1, 9 do c.eigvec[k - 1] = t.eigvec and t.eigvec[k] or 0 end
    for k = 1, 4 do
      c.mean[k - 1] = t.mean and (t.mean[k] or 0) or 0
      c.std[k - 1] = t.std and (t.std[k] or 0) or 0
    end
  end
  return arr
end

function M.compose(list)
  for i, t in ipairs(list) do
    if type(t) ~= 'table' or type(t.kind) ~= 'number' then
      error('crlab.transforms.compose: element ' .. i .. ' is not a transform', 2)
    end
  end
  if #list > C.CRL_MAX_TRANSFORMS then
    error(string.format("crlab.transforms.compose: %d transforms, at most %d (each draws from %d of a sample's " ..
                        '%d random blocks)', #list, C.CRL_MAX_TRANSFORMS, C.CRL_TRANSFORM_BLOCKS,
                        C.CRL_SAMPLE_BLOCKS), 2)
  end
  local self = setmetatable({list = list, c = to_c(list), n = #list}, Pipeline)
  return self
end

-- True for what compose returns.
function M.isPipeline(v) return type(v) == 'table' and getmetatable(v) == Pipeline end

-- The output (h, w) for an input (h, w), or nil when it depends on the
-- image (no fixed-size step at the end).
function Pipeline:outputSize(h, w)
  for _, t in ipairs(self.list) do
    if t.kind == C.CRL_T_RANDOM_CROP or t.kind == C.CRL_T_CENTER_CROP or t.kind == C.CRL_T_RANDOM_RESIZED_CROP then
      h, w = t.h > 0 and t.h or h, t.w > 0 and t.w or w
    elseif t.kind == C.CRL_T_RESIZE then
      if t.w > 0 then
        h, w = t.h, t.w
      elseif h and w then
        if h <= w then h, w = t.h, math.floor(t.h * w / h + 0.5) else h, w = math.floor(t.h * h / w + 0.5), t.h end
      else
        h, w = nil, nil
      end
    end
  end
  return h, w
end

-- Applies the pipeline to one uint8 (C, H, W) image; the draws come from
-- (seed, counter), by default the next ones of the global generator.
function Pipeline:apply(img, seed, counter)
  if seed == nil then
    local g = C.crl_generator_default()
    seed, counter = g.seed, g.offset
    g.offset = g.offset + C.CRL_SAMPLE_BLOCKS
  end
  local out = Tn.new(C.CRL_FLOAT32, C.CRL_CPU, {0})
  check(C.crl_transform_apply(out, img, self.c, self.n, seed, counter or 0))
  return out
end

function Pipeline:__tostring()
  local names = {}
  for i, t in ipairs(self.list) do names[i] = t.name end
  return 'transforms{' .. table.concat(names, ', ') .. '}'
end

return M
