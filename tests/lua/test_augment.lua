-- crl_batch_assemble (gather + random crop with zero or reflect padding +
-- horizontal flip + normalisation) against a plain Lua loop that applies
-- the same draws, and its determinism and errors.
local t = require 'tap'
local ffi = require 'ffi'
local crlab = require 'crlab'
local data = require 'crlab.data'
local C = crlab.C

local N, CH, H, W = 7, 2, 5, 6
local images = crlab.zeros({N, CH, H, W}, 'uint8')
local flat = images:view(-1)
for i = 1, flat:numel() do flat[i] = (i * 37) % 256 end
local labels = crlab.tensor({3, 1, 4, 1, 5, 9, 2}, 'uint8')
local split = {images = images, labels = labels}


local function reference(idx, pad, reflect, dy, dx, flip, mean, std)
  local out = {}
  for c = 0, CH - 1 do
    for y = 0, H - 1 do
      for x = 0, W - 1 do
        local sy, sx = y + dy, (flip and (W - 1 - x) or x) + dx
        local v
        local function refl(i, n)
          while i < 0 or i >= n do i = i < 0 and -i or 2 * (n - 1) - i end
          return i
        end
        if sy >= 0 and sy < H and sx >= 0 and sx < W then
          v = images[idx + 1][c + 1][sy + 1][sx + 1]
        elseif reflect then
          v = images[idx + 1][c + 1][refl(sy, H) + 1][refl(sx, W) + 1]
        else
          v = 0
        end
        out[#out + 1] = (v / 255 - mean[c + 1]) / std[c + 1]
      end
    end
  end
  return out
end

-- Finds the (dy, dx, flip) that reproduces the kernel's output for one
-- element: every combination is tried, so the check is that exactly the
-- documented family of transforms was applied, value for value.
local function matches(xb, idx, pad, reflect, mean, std)
  local got = xb:view(-1):totable()
  local found = 0
  for dy = -pad, pad do
    for dx = -pad, pad do
      for _, flip in ipairs({false, true}) do
        local want = reference(idx, pad, reflect, dy, dx, flip, mean, std)
        local same = true
        for i = 1, #want do
          if math.abs(got[i] - want[i]) > 1e-5 then same = false break end
        end
        if same then found = found + 1 end
      end
    end
  end
  return found > 0
end

local mean, std = {0.2, 0.6}, {0.5, 0.25}
for _, cfg in ipairs({{pad = 0, flip = false, reflect = false}, {pad = 2, flip = true, reflect = false},
                      {pad = 3, flip = true, reflect = true}}) do
  crlab.manualSeed(5)
  local b = data.batches(split, {batch = 4, crop = cfg.pad, flip = cfg.flip, reflect = cfg.reflect, mean = mean,
                                 std = std})
  local all = true
  for _, x, y in b:epoch() do
    local order = ffi.cast('int32_t *', C.crl_tensor_data(b.idx))
    for k = 1, x:size(1) do
      local idx = order[k - 1]
      all = all and matches(x[k], idx, cfg.pad, cfg.reflect, mean, std) and y[k] == labels[idx + 1]
    end
  end
  t.ok(all, string.format('crop pad %d (%s), flip %s: every sample equals a reference crop/flip/normalise of ' ..
                          'its image, with its label', cfg.pad, cfg.reflect and 'reflect' or 'zero',
                          tostring(cfg.flip)))
end

-- no augmentation: exactly the normalised images in order
local b = data.batches(split, {batch = 7, shuffle = false, mean = mean, std = std})
for _, x in b:epoch() do
  local want = reference(2, 0, false, 0, 0, false, mean, std)
  local got = x[3]:view(-1):totable()
  local err = 0
  for i = 1, #want do err = math.max(err, math.abs(got[i] - want[i])) end
  t.ok(err < 1e-6, 'without augmentation the third sample is image 2 normalised (max error ' .. err .. ')')
end

-- the same seed gives the same batches
local function first_batch(seed)
  crlab.manualSeed(seed)
  local bb = data.batches(split, {batch = 7, crop = 2, flip = true, mean = mean, std = std})
  for _, x in bb:epoch() do return x:clone() end
end
t.eq((first_batch(9) - first_batch(9)):abs():max(), 0, 'the same seed gives the same augmented batch')
t.ok((first_batch(9) - first_batch(10)):abs():max() > 0, 'another seed gives another batch')

-- errors
local p = ffi.new('crl_augment_params')
p.std[0], p.std[1] = 1, 1
local out, lo = crlab.zeros(1), crlab.tensor({0}, 'int32')
local bad_idx = crlab.tensor({0, 7}, 'int32')
t.ok(C.crl_batch_assemble(out, lo, images, labels, bad_idx, p, nil) ~= 0 and
     crlab.C.crl_last_error() ~= nil and ffi.string(C.crl_last_error()):find('index 7 at batch position 1'),
     'an index past the end fails: ' .. ffi.string(C.crl_last_error()))
p.pad = 9
t.ok(C.crl_batch_assemble(out, lo, images, labels, crlab.tensor({0}, 'int32'), p, nil) ~= 0 and
     ffi.string(C.crl_last_error()):find('crop padding 9'), 'padding larger than the image fails')
p.pad = 0
p.std[1] = 0
t.ok(C.crl_batch_assemble(out, lo, images, labels, crlab.tensor({0}, 'int32'), p, nil) ~= 0 and
     ffi.string(C.crl_last_error()):find('std%[1%]'), 'a zero std fails')
t.done()
