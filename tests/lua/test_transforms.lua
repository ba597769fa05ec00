-- The augmentation transforms against plain Lua reference loops and known
-- answers, and the threaded loader: the same batches with 1 and 4 threads,
-- errors with file names, skipping, clean shutdown.
local t = require 'tap'
local ffi = require 'ffi'
local crlab = require 'crlab'
local T = require 'crlab.transforms'
local data = require 'crlab.data'
local image = require 'crlab.image'
local C = crlab.C

local function ramp(c, h, w)
  local img = crlab.zeros({c, h, w}, 'uint8')
  local flat = img:view(-1)
  for i = 1, flat:numel() do flat[i] = (i * 29) % 251 end
  return img
end

local function maxdiff(a, b) return (a - b):abs():max() end
local img = ramp(3, 7, 9)
local f = img:float() * (1 / 255) -- as the kernel scales

-- normalize, centre crop, flip: exact
local mean, std = {0.1, 0.2, 0.3}, {0.5, 0.25, 2}
local norm = T.compose{T.normalize(mean, std)}:apply(img, 1, 0)
local ref = f:clone()
for c = 1, 3 do ref[c]:add_(-mean[c]):div_(std[c]) end
t.ok(maxdiff(norm, ref) < 1e-6, 'normalize = (x / 255 - mean) / std per channel')
local cc = T.compose{T.centerCrop({3, 5})}:apply(img, 1, 0)
t.ok(maxdiff(cc, f:narrow(2, 3, 3):narrow(3, 3, 5)) < 1e-6, 'centre crop 3x5 of 7x9 starts at (2, 2)')
local fl = T.compose{T.hflip(1)}:apply(img, 1, 0)
local flref = f:clone()
for c = 1, 3 do for y = 1, 7 do for x = 1, 9 do flref[c][y][x] = f[c][y][10 - x] end end end
t.ok(maxdiff(fl, flref) < 1e-6, 'hflip(1) mirrors every row')
t.ok(maxdiff(T.compose{T.hflip(0)}:apply(img, 1, 0), f) < 1e-6, 'hflip(0) leaves the image alone')

-- random crop: every draw is one of the (2p+1)^2 shifted windows, zero or reflect padded
local function window(dy, dx, reflect)
  local out = crlab.zeros(3, 7, 9)
  local function r(i, n) while i < 1 or i > n do i = i < 1 and 2 - i or 2 * n - i end return i end
  for c = 1, 3 do
    for y = 1, 7 do
      for x = 1, 9 do
        local sy, sx = y + dy, x + dx
        if sy >= 1 and sy <= 7 and sx >= 1 and sx <= 9 then out[c][y][x] = f[c][sy][sx]
        elseif reflect then out[c][y][x] = f[c][r(sy, 7)][r(sx, 9)] end
      end
    end
  end
  return out
end
for _, reflect in ipairs({false, true}) do
  local pipe = T.compose{T.randomCrop({7, 9}, {pad = 2, reflect = reflect})}
  local all, seen = true, {}
  for k = 0, 40 do
    local out = pipe:apply(img, 5, k * 256)
    local hit = false
    for dy = -2, 2 do
      for dx = -2, 2 do
        if not hit and maxdiff(out, window(dy, dx, reflect)) < 1e-6 then hit = true seen[dy .. ',' .. dx] = true end
      end
    end
    all = all and hit
  end
  local n = 0
  for _ in pairs(seen) do n = n + 1 end
  t.ok(all and n >= 10, string.format('randomCrop pad 2 (%s): every sample is a shifted window (%d of 25 offsets seen)',
                                      reflect and 'reflect' or 'zeros', n))
end

-- resize: constants stay constant, linear ramps stay linear when enlarging,
-- and shrinking by 2 averages with the [1 3 3 1] / 8 antialiasing kernel
local flat = crlab.zeros({1, 4, 6}, 'uint8'):fill(100)
t.ok(maxdiff(T.compose{T.resize({9, 13})}:apply(flat, 1, 0), crlab.zeros(1, 9, 13):fill(100 / 255)) < 1e-6,
     'resize keeps a constant image constant')
local lin = crlab.zeros({1, 1, 8}, 'uint8')
for x = 1, 8 do lin[1][1][x] = 20 * x end
local up = T.compose{T.resize({1, 16})}:apply(lin, 1, 0)
local linear = true
for x = 2, 15 do -- away from the borders, bilinear reproduces a linear ramp
  local want = (20 * ((x - 0.5) / 2 + 0.5)) / 255
  linear = linear and math.abs(up[1][1][x] - want) < 1e-5
end
t.ok(linear, 'enlarging a linear ramp 2x gives the interpolated ramp')
local checker = crlab.zeros({1, 8, 8}, 'uint8')
for y = 1, 8 do for x = 1, 8 do checker[1][y][x] = ((x + y) % 2) * 200 end end
local down = T.compose{T.resize({4, 4})}:apply(checker, 1, 0)
t.ok(math.abs(down[1][2][2] - 100 / 255) < 1e-6 and math.abs(down[1][3][3] - 100 / 255) < 1e-6,
     'shrinking a checkerboard 2x antialiases it to its mean grey')
local shorter = T.compose{T.resize(4)}:apply(ramp(3, 8, 12), 1, 0)
t.eq(tostring(shorter:size()), '3x4x6', 'resize(4) sets the shorter side and keeps the aspect')

-- random resized crop: with scale and ratio fixed to 1, it is a plain resize
local rrc = T.compose{T.randomResizedCrop({5, 5}, {scale = {1, 1}, ratio = {1, 1}})}:apply(ramp(3, 10, 10), 3, 0)
t.ok(maxdiff(rrc, T.compose{T.resize({5, 5})}:apply(ramp(3, 10, 10), 1, 0)) < 1e-6,
     'randomResizedCrop with scale 1 and ratio 1 equals resizing the whole image')
t.eq(tostring(T.compose{T.randomResizedCrop(6)}:apply(ramp(3, 20, 30), 3, 99):size()), '3x6x6',
     'randomResizedCrop(6) gives 6x6 whatever the crop')

-- colour jitter, lighting, cutout: the shape of each change
local cj = T.compose{T.colorJitter{brightness = 0.5}}:apply(img, 7, 0)
local ratio = cj[1][1][2] / f[1][1][2]
local scaled = true
for c = 1, 3 do for y = 1, 7 do for x = 1, 9 do
  local v = f[c][y][x] * ratio
  scaled = scaled and math.abs(cj[c][y][x] - math.min(1, v)) < 1e-5
end end end
t.ok(scaled and ratio >= 0.5 and ratio <= 1.5 and ratio ~= 1, string.format('brightness scales every pixel by one ' ..
     'factor in [0.5, 1.5] (%.3f)', ratio))
local sat = T.compose{T.colorJitter{saturation = 1}}:apply(img, 8, 0)
local g0 = 0.299 * f[1][2][2] + 0.587 * f[2][2][2] + 0.114 * f[3][2][2]
local g1 = 0.299 * sat[1][2][2] + 0.587 * sat[2][2][2] + 0.114 * sat[3][2][2]
t.ok(math.abs(g0 - g1) < 1e-3, 'saturation keeps the grey level of a pixel')
local li = T.compose{T.lighting{alphastd = 0.5}}:apply(img, 9, 0)
local off = li - f
t.ok(maxdiff(off[1], off[1]:clone():fill(off[1][1][1])) < 1e-6 and math.abs(off[1][1][1]) > 0,
     'lighting adds one offset per channel')
local cut = T.compose{T.cutout(3)}:apply(crlab.zeros({1, 9, 9}, 'uint8'):fill(255), 10, 0)
local zeros = 0
for y = 1, 9 do for x = 1, 9 do if cut[1][y][x] == 0 then zeros = zeros + 1 end end end
t.ok(zeros > 0 and zeros <= 9, 'cutout(3) zeroes at most a 3x3 square (' .. zeros .. ' pixels)')
t.errors(function() T.compose{T.lighting{}}:apply(crlab.zeros({1, 4, 4}, 'uint8'), 1, 0) end, 'needs 3 channels',
         'lighting on a grey image')
t.errors(function() T.compose{T.centerCrop(9)}:apply(img, 1, 0) end, 'does not fit', 'a crop larger than the image')

-- the same (seed, counter) gives the same sample; another counter another one
local pipe = T.compose{T.randomResizedCrop(5), T.hflip(), T.colorJitter{brightness = 0.4, contrast = 0.4}}
local big = ramp(3, 20, 24)
t.eq(maxdiff(pipe:apply(big, 4, 512), pipe:apply(big, 4, 512)), 0, 'same seed and counter: same sample')
t.ok(maxdiff(pipe:apply(big, 4, 512), pipe:apply(big, 4, 768)) > 0, 'another counter: another sample')

-- a sample's stream has room for 16 transforms (16 Philox blocks each of its
-- 256): a longer pipeline, which would read the next sample's numbers, is refused
do
  local flips = {}
  for i = 1, 17 do flips[i] = T.hflip() end
  t.errors(function() return T.compose(flips) end, '17 transforms, at most 16', 'compose refuses 17 transforms')
  flips[17] = nil
  t.eq(tostring(T.compose(flips):apply(img, 1, 0):size()), '3x7x9', 'compose takes 16 transforms')
  local arr = ffi.new('crl_transform[17]')
  for i = 0, 16 do arr[i].kind = C.CRL_T_HFLIP end
  local out = crlab.zeros(0)
  t.ok(C.crl_transform_apply(out, img, arr, 17, 1, 0) ~= 0 and
       ffi.string(C.crl_last_error()):find('17 transforms, at most 16', 1, true) ~= nil,
       'crl_transform_apply refuses 17 transforms: ' .. ffi.string(C.crl_last_error()))
end

---------------------------------------------------------------------------
-- the loader

local tmp = os.tmpname()
os.remove(tmp)
os.execute('mkdir -p ' .. tmp .. '/a ' .. tmp .. '/b')
local paths, labels = {}, {}
for i = 1, 23 do
  local p = string.format('%s/%s/img%02d.%s', tmp, i % 2 == 0 and 'a' or 'b', i, i % 3 == 0 and 'png' or 'jpg')
  local im = ramp(3, 30 + i, 40 - i)
  if p:find('png$') then image.save(p, im) else image.saveJpeg(p, im, 90) end
  paths[#paths + 1] = p
  labels[#labels + 1] = i % 2
end
local files = data.folder(tmp)
t.eq(files.data:size(), 23, 'a folder dataset of 23 JPEG and PNG files')
local aug = T.compose{T.randomResizedCrop(16), T.hflip(), T.colorJitter{brightness = 0.3}, T.normalize({0.5, 0.5, 0.5}, {0.2, 0.2, 0.2})}

local function epoch_batches(split, threads, transform, batch)
  crlab.manualSeed(77)
  local L = data.loader(split, {batch = batch or 5, transform = transform, threads = threads, prefetch = threads + 1})
  local xs, ys = {}, {}
  for i, x, y in L:epoch() do
    xs[i], ys[i] = x:clone(), y:clone()
  end
  L:close()
  return xs, ys
end
local x1, y1 = epoch_batches(files.data, 1, aug)
local x4, y4 = epoch_batches(files.data, 4, aug)
local same = #x1 == 5 and #x4 == 5
for i = 1, math.min(#x1, #x4) do
  same = same and maxdiff(x1[i], x4[i]) == 0 and y1[i]:eq(y4[i]):sum() == y1[i]:size(1)
end
t.ok(same, 'files: the same seed gives the same batches with 1 and with 4 threads (5 batches, the last of 3)')
t.eq(x1[5]:size(1), 3, 'the last batch holds the remaining 3 images')
local counts = {}
for i = 1, 5 do for k = 1, y1[i]:size(1) do counts[#counts + 1] = y1[i][k] end end
t.eq(#counts, 23, 'an epoch visits every image once')

local cifar_like = {images = crlab.zeros({50, 3, 8, 8}, 'uint8'), labels = crlab.zeros({50}, 'int32')}
local cf = cifar_like.images:view(-1)
for i = 1, cf:numel() do cf[i] = (i * 13) % 256 end
for i = 1, 50 do cifar_like.labels[i] = i % 10 end
local mem = setmetatable(cifar_like, {__index = {size = function(s) return s.labels:size(1) end}})
local caug = T.compose{T.randomCrop(8, {pad = 2}), T.hflip(), T.normalize({0.5, 0.5, 0.5}, {0.25, 0.25, 0.25})}
local m1 = epoch_batches(mem, 1, caug, 16)
local m4 = epoch_batches(mem, 4, caug, 16)
local msame = #m1 == 4
for i = 1, #m1 do msame = msame and maxdiff(m1[i], m4[i]) == 0 end
t.ok(msame, 'memory: the same seed gives the same augmented batches with 1 and 4 threads')
crlab.manualSeed(78)
local L = data.loader(mem, {batch = 16, transform = caug, threads = 2})
local _, other = L:epoch()()
t.ok(maxdiff(other, m1[1]) > 0, 'another seed gives other batches')
L:close()
local L2 = data.loader(mem, {batch = 16, transform = caug, threads = 2, dropLast = true})
t.eq(L2:count(), 3, 'dropLast leaves out the incomplete last batch')
local n = 0
for _ in L2:epoch() do n = n + 1 end
for _ in L2:epoch() do n = n + 1 end
t.eq(n, 6, 'two epochs in a row on one loader')
L2:close()

-- a corrupt file: the error reaches the caller with the file name, then a clean stop
local bad = files.data:head(23)
local victim = bad.paths[7]
local fh = io.open(victim, 'wb')
fh:write('\255\216\255 this is not really a jpeg')
fh:close()
local L3 = data.loader(bad, {batch = 4, transform = aug, threads = 3, shuffle = false})
local err
local ok3 = pcall(function()
  local ok, e = pcall(function() for _ in L3:epoch() do end end)
  err = e
end)
t.ok(ok3 and err and tostring(err):find(victim, 1, true), 'a corrupt image stops the epoch with its file name: ' .. tostring(err))
local again = pcall(function() for _ in L3:epoch() do end end)
t.ok(not again, 'the next epoch meets the same file again (the error is not swallowed)')
L3:close()
t.errors(function() for _ in L3:epoch() do end end, "argument 'l' is NULL",
         'after an error the loader closes (threads joined) and refuses further use')
local L4 = data.loader(bad, {batch = 4, transform = aug, threads = 2, skipBad = true})
local seen = 0
for _, x in L4:epoch() do seen = seen + x:size(1) end
t.ok(seen == 23 and L4:skipped() == 1, 'skipBad replaces the unreadable image and counts it (' .. L4:skipped() .. ')')
L4:close()
-- a corrupt image third in the list, batch 1: the two good batches before it
-- come in order, then the error names batch 2 (0-based) and the file, on
-- every run whatever the threads' timing
local third = bad:head(6)
local victim3 = third.paths[3]
fh = io.open(victim3, 'wb')
fh:write('not an image at all')
fh:close()
local runs_ok, report = 0, ''
for run = 1, 20 do
  local L5 = data.loader(third, {batch = 1, transform = aug, threads = 4, shuffle = false})
  local got = {}
  local ok5, e5 = pcall(function() for i, _, y in L5:epoch() do got[#got + 1] = i .. ':' .. y[1] end end)
  L5:close()
  local want = '1:' .. third.labels[1] .. ' 2:' .. third.labels[2]
  if not ok5 and table.concat(got, ' ') == want and tostring(e5):find('batch 2: ', 1, true) and
     tostring(e5):find(victim3, 1, true) then
    runs_ok = runs_ok + 1
  elseif report == '' then
    report = 'run ' .. run .. ': delivered {' .. table.concat(got, ' ') .. '}, error ' .. tostring(e5)
  end
end
t.eq(runs_ok, 20, 'a corrupt third image with batch 1: batches 1 and 2 delivered, then the error names batch 2 ' ..
     'and the file, in 20 runs of 4 threads ' .. report)
t.errors(function() data.loader(files.data, {transform = T.compose{T.hflip()}}) end, 'must end in a fixed size',
         'images of different sizes need a fixed-size pipeline')
t.errors(function() data.loader(mem, {transform = caug, threads = 0}) end, 'threads in 1..256', 'zero threads')
os.execute('rm -rf ' .. tmp)
t.done()
