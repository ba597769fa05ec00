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

-- Tiles N images (N, C, H, W) uint8 into one (C, H', W') image with pad
-- pixels between cells (padTop extra above each row, for captions).
function M.grid(images, cols, pad, padTop)
  pad, padTop = pad or 2, padTop or 0
  local n, c, h, w = images:size(1), images:size(2), images:size(3), images:size(4)
  cols = math.min(cols or 8, n)
  local rows = math.ceil(n / cols)
  local ch, cw = h + pad + padTop, w + pad
  local out = T.new(C.CRL_UINT8, C.CRL_CPU, {c, rows * ch + pad, cols * cw + pad}):fill(255)
  for i = 0, n - 1 do
    local r, q = math.floor(i / cols), i % cols
    out:narrow(2, pad + padTop + r * ch + 1, h):narrow(3, pad + q * cw + 1, w):copy(images[i + 1])
  end
  return out, {rows = rows, cols = cols, cell_h = ch, cell_w = cw, pad = pad, padTop = padTop, h = h, w = w}
end

-- Writes a grid with a caption above each image, through gnuplot (which
-- draws the text); without gnuplot, the grid alone. Returns true when the
-- captions were drawn.
function M.saveCaptioned(path, images, captions, cols, scale)
  scale = scale or math.max(1, math.floor(96 / images:size(3)))
  local grid, g = M.grid(images, cols, 2, math.ceil(14 / scale))
  local raw = path .. '.grid.png'
  M.save(raw, grid)
  local plot = require 'crlab.plot'
  if not plot.available() then
    os.rename(raw, path)
    return false
  end
  local H, W = grid:size(2), grid:size(3)
  local lines = {
    string.format('set terminal pngcairo size %d,%d noenhanced', W * scale, H * scale),
    string.format('set output "%s"', path:gsub('"', '\\"')),
    'unset border', 'unset tics', 'unset key', 'set margins 0,0,0,0',
    string.format('set xrange [0:%d]', W), string.format('set yrange [0:%d]', H),
  }
  for i, cap in ipairs(captions) do
    local r, q = math.floor((i - 1) / g.cols), (i - 1) % g.cols
    local x = g.pad + q * g.cell_w + g.w / 2
    local ytop = g.pad + r * g.cell_h -- from the top, in image rows
    lines[#lines + 1] = string.format('set label %d "%s" at %g,%g center front font ",%d"', i,
                                      tostring(cap):gsub('"', "'"), x, H - ytop - g.padTop / 2, math.max(6, 2 * scale + 3))
  end
  lines[#lines + 1] = string.format('plot "%s" binary filetype=png with rgbimage', raw)
  local out, ok = plot.run(lines)
  os.remove(raw)
  if not ok then error('crlab.image: gnuplot could not draw ' .. path .. ': ' .. out, 2) end
  return true
end

return M
