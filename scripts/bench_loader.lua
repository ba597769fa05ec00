-- scripts/bench_loader.lua -- loader throughput in images/s with 1 and 2
-- threads for (a) 32x32 CIFAR-style records in memory with random crop +
-- flip + normalise and (b) JPEG files of ImageNet-like size (500x375,
-- generated here) with decode + random resized crop to 224 + flip +
-- normalise; and, when torch and torchvision are installed, their
-- DataLoader on the same files with the same number of workers, with the
-- ratio. The second of two epochs is timed (workers already started).
--   crlab scripts/bench_loader.lua [--jpegs 300] [--records 10000]
local data = require 'crlab.data'
local image = require 'crlab.image'
local T = require 'crlab.transforms'
local json = require 'crlab.json'
local C = crlab.C

local njpeg, nrec = 300, 10000
for i = 1, #arg do
  if arg[i] == '--jpegs' then njpeg = tonumber(arg[i + 1]) end
  if arg[i] == '--records' then nrec = tonumber(arg[i + 1]) end
end

local dir = os.tmpname()
os.remove(dir)
os.execute('mkdir -p ' .. dir .. '/cifar ' .. dir .. '/jpeg/a')
crlab.manualSeed(1)

-- (a) CIFAR-style records
local f = assert(io.open(dir .. '/cifar/data_batch_1.bin', 'wb'))
local noise = crlab.rand(3072):mul_(255):byte()
local px = require('ffi').string(C.crl_tensor_data(noise), 3072)
for i = 1, nrec do f:write(string.char(i % 10), px) end
f:close()
local rec = {images = crlab.zeros({0}, 'uint8'), labels = crlab.zeros({0}, 'int32')}
assert(C.crl_cifar_read(rec.images, rec.labels, dir .. '/cifar/data_batch_1.bin', 1, 0) == 0)
local cifar_t = T.compose{T.randomCrop(32, {pad = 4}), T.hflip(), T.normalize({0.4914, 0.4822, 0.4465}, {0.247, 0.2435, 0.2616})}

-- (b) 500x375 JPEGs with smooth random content (quality 90)
local listing = {}
local base = crlab.rand(3, 47, 63)
for i = 1, njpeg do
  local small = ((base + crlab.rand(3, 47, 63) * 0.3) * 180):clamp(0, 255):byte()
  local img = T.compose{T.resize({375, 500})}:apply(small, 1, 0)
  local p = string.format('%s/jpeg/a/img%04d.jpg', dir, i)
  image.saveJpeg(p, (img * 255):clamp(0, 255):byte(), 90)
  listing[#listing + 1] = p
end
local lf = assert(io.open(dir .. '/jpeg/list.txt', 'w'))
lf:write(table.concat(listing, '\n'), '\n')
lf:close()
local files = data.folder(dir .. '/jpeg').data
local jpeg_t = T.compose{T.randomResizedCrop(224), T.hflip(), T.normalize({0.485, 0.456, 0.406}, {0.229, 0.224, 0.225})}

local function rate(split, transform, threads)
  local L = data.loader(split, {batch = 128, transform = transform, threads = threads})
  for _ in L:epoch() do end
  local t0, n = C.crl_time_seconds(), 0
  for _, x in L:epoch() do n = n + x:size(1) end
  local r = n / (C.crl_time_seconds() - t0)
  L:close()
  return r
end

local ours = {}
for _, th in ipairs({1, 2}) do
  ours['records_' .. th] = rate(rec, cifar_t, th)
  ours['jpeg_' .. th] = rate(files, jpeg_t, th)
end

local theirs
for _, py in ipairs({'python3', '/usr/bin/python3'}) do
  local p = io.popen(string.format('%s scripts/bench_loader_torch.py %s/cifar/data_batch_1.bin %d %s/jpeg/list.txt 2>/dev/null',
                                   py, dir, nrec, dir))
  local line = p:read('*a'):match('{.-}')
  p:close()
  if line then theirs = json.decode(line) break end
end

local cpu = (io.open('/proc/cpuinfo'):read('*a'):match('model name%s*:%s*([^\n]+)')) or 'unknown CPU'
print(string.format('machine: %s; batch 128; %d records, %d JPEGs of 500x375', cpu, nrec, njpeg))
print(string.format('%-44s %8s %12s %12s %7s', 'case', 'threads', 'crlab img/s', 'tv img/s', 'ratio'))
for _, case in ipairs({{'records', '(a) 32x32 records: crop+flip+normalise'}, {'jpeg', '(b) JPEG: decode+RRC 224+flip+normalise'}}) do
  for _, th in ipairs({1, 2}) do
    local k = case[1] .. '_' .. th
    local tv = theirs and theirs[k]
    print(string.format('%-44s %8d %12.0f %12s %7s', case[2], th, ours[k], tv and string.format('%.0f', tv) or 'n/a',
                        tv and string.format('%.2fx', ours[k] / tv) or 'n/a'))
  end
end
if theirs then print('(torchvision ' .. theirs.torchvision .. ', DataLoader with num_workers = threads)') end
os.execute('rm -rf ' .. dir)
