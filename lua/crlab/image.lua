-- crlab.image: PNG and JPEG files to and from uint8 (C, H, W) tensors, and
-- grids of images for looking at what a network sees.
--   local img = crlab.image.load('cat.jpg')          -- (3, H, W) uint8
--   crlab.image.save('out.png', img)
local core = require 'crlab.core'
local T = require 'crlab.tensor'
local C, check = core.C, core.check

local M = {}

-- channels: nil keeps the file's (1 or 3), 1 greys, 3 makes RGB.
function M.load(path, channels)
  local t = T.new(C.CRL_UINT8, C.CRL_CPU, {0})
  check(C.crl_image_read(t, path, channels or 0))
  return t
end

-- A uint8 (C, H, W) tensor, or a float one with values in [0, 1].
function M.save(path, img)
  if img:type() == 'crlab.FloatTensor' then img = (img * 255 + 0.5):clamp(0, 255):byte() end
  check(C.crl_image_write_png(path, img:contiguous()))
end

-- JPEG of this quality (default 90); progressive = true for a progressive file.
function M.saveJpeg(path, img, quality, progressive)
  check(C.crl_image_write_jpeg(path, img:contiguous(), quality or 90, progressive and 1 or 0))
end

-- Undoes a normalisation: x * std + mean, per channel, back to uint8.
function M.denormalize(x, mean, std)
  local out = x:clone()
  for c = 1, x:size(1) do
    out[c]:mul_(std[c] or std[1]):add_(mean[c] or mean[1])
  end
  return (out * 255 + 0.5):clamp(0, 255):byte()
end

-- Tiles N images (N, C, H, W) uint8 into one (C, rows*(H+pad)+pad, ...) image.
function M.grid(images, cols, pad)
  pad = pad or 2
  local n, c, h, w = images:size(1), images:size(2), images:size(3), images:size(4)
  cols = math.min(cols or 8, n)
  local rows = math.ceil(n / cols)
  local out = T.new(C.CRL_UINT8, C.CRL_CPU, {c, rows * (h + pad) + pad, cols * (w + pad) + pad}):fill(255)
  for i = 0, n - 1 do
    local r, q = math.floor(i / cols), i % cols
    out:narrow(2, pad + r * (h + pad) + 1, h):narrow(3, pad + q * (w + pad) + 1, w):copy(images[i + 1])
  end
  return out
end

return M
