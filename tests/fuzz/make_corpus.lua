-- tests/fuzz/make_corpus.lua OUT -- writes the seed corpus of the fuzz
-- harnesses (tests/fuzz/corpus/<parser>/) with crlab's own writers:
--   LUA_PATH='lua/?.lua;lua/?/init.lua;;' luajit tests/fuzz/make_corpus.lua tests/fuzz/corpus
local ffi = require 'ffi'
local crlab = require 'crlab'
local image = require 'crlab.image'
local checkpoint = require 'crlab.checkpoint'
local C = require('crlab.core').C
local out = assert(arg[1], 'usage: make_corpus.lua OUT')

local function write(path, s)
  assert(os.execute("mkdir -p '" .. path:match('^(.*)/') .. "'"))
  local f = assert(io.open(path, 'wb'))
  f:write(s)
  f:close()
end
local function read(path)
  local f = assert(io.open(path, 'rb'))
  local s = f:read('*a')
  f:close()
  return s
end
local function be32(n) return string.char(math.floor(n / 2^24) % 256, math.floor(n / 2^16) % 256, math.floor(n / 256) % 256, n % 256) end
local function bytes(n, seed)
  local t = {}
  for i = 1, n do t[i] = string.char((i * 7 + seed * 13) % 256) end
  return table.concat(t)
end
local function img(c, h, w)
  local x = crlab.zeros({c, h, w}, 'uint8')
  for ch = 1, c do for y = 1, h do for xx = 1, w do x[ch][y][xx] = (4 * xx + 3 * y + 40 * ch) % 256 end end end
  return x
end
local tmp = os.tmpname()

-- idx: labels (1 dim), images (3 dims), plain and gzip
local labels = '\0\0\8\1' .. be32(10) .. bytes(10, 1)
local images = '\0\0\8\3' .. be32(2) .. be32(8) .. be32(8) .. bytes(128, 2)
write(out .. '/idx/labels.idx', labels)
write(out .. '/idx/images.idx', images)
for name, s in pairs({labels = labels, images = images}) do
  write(tmp, s)
  assert(os.execute("gzip -9 -n -c '" .. tmp .. "' > '" .. out .. '/idx/' .. name .. ".idx.gz'"))
end

-- CIFAR: one CIFAR-10 record, one CIFAR-100 record (coarse, fine)
write(out .. '/cifar/cifar10.bin', '\3' .. bytes(3072, 3))
write(out .. '/cifar/cifar100.bin', '\5\42' .. bytes(3072, 4))

-- SVHN: one image and two images, through crl_svhn_write
for n = 1, 2 do
  assert(os.execute("mkdir -p '" .. out .. "/svhn'"))
  local im, lab = img(3, 32, 32), crlab.zeros({n}, 'int32')
  if n == 2 then im = crlab.zeros({2, 3, 32, 32}, 'uint8') else im = im:view({1, 3, 32, 32}) end
  for i = 1, n do lab[i] = i end
  assert(C.crl_svhn_write(out .. '/svhn/svhn' .. n .. '.mat', im, lab) == 0, ffi.string(C.crl_last_error()))
end

-- Stanford Cars: annotations (2 entries) and class names (3), plain and zlib-compressed
local function text(s)
  local t = crlab.zeros({#s}, 'uint8')
  ffi.copy(C.crl_tensor_data(t), s, #s)
  return t
end
local lab, box = crlab.zeros({2}, 'int32'), crlab.zeros({2, 4})
lab[1], lab[2] = 0, 195
box[1][1], box[1][2], box[1][3], box[1][4] = 3, 4, 10, 6
box[2][1], box[2][2], box[2][3], box[2][4] = 0, 0, 16, 12
assert(os.execute("mkdir -p '" .. out .. "/cars'"))
for z = 0, 1 do
  local sfx = z == 1 and '-z.mat' or '.mat'
  assert(C.crl_cars_annos_write(out .. '/cars/annos' .. sfx, lab, box, text('00001.jpg\n08144.jpg'), z) == 0,
         ffi.string(C.crl_last_error()))
  assert(C.crl_cars_meta_write(out .. '/cars/meta' .. sfx, text('AM General Hummer SUV 2000\nCitro\195\171n C5 2003\nsmart fortwo Convertible 2012'), z) == 0,
         ffi.string(C.crl_last_error()))
end

-- and the plain annotations as a big-endian machine writes them ('MI'): every
-- tag, flag, dimension and number byte-swapped, text bytes kept
local function big_endian(le)
  local out = {}
  local function word(pos) out[#out + 1] = le:sub(pos, pos + 3):reverse() end
  local function swapped(pos, n, size)
    for k = pos, pos + n - 1, size do out[#out + 1] = le:sub(k, k + size - 1):reverse() end
  end
  local function u32(pos) local a, b, c, d = le:byte(pos, pos + 3) return a + 256 * (b + 256 * (c + 256 * d)) end
  local sizes = {[1] = 1, [2] = 1, [3] = 2, [4] = 2, [5] = 4, [6] = 4, [7] = 4, [9] = 8, [12] = 8, [13] = 8,
                 [16] = 1, [17] = 2, [18] = 4}
  local function padded(n) return n + (8 - n % 8) % 8 end
  local matrix
  local function data(pos) -- a data element; returns the position after it
    local t = u32(pos)
    if t >= 65536 then -- small: the tag word, then 4 bytes of data
      word(pos)
      swapped(pos + 4, 4, sizes[t % 65536] or 1)
      return pos + 8
    end
    local n = u32(pos + 4)
    word(pos) word(pos + 4)
    swapped(pos + 8, padded(n), sizes[t] or 1)
    return pos + 8 + padded(n)
  end
  function matrix(pos, stop) -- the contents of an miMATRIX element
    if pos >= stop then return end
    word(pos) word(pos + 4) word(pos + 8) word(pos + 12) -- array flags
    local class = u32(pos + 8) % 256
    pos = data(pos + 16) -- dimensions
    local nt = u32(pos)
    if nt >= 65536 then word(pos) out[#out + 1] = le:sub(pos + 4, pos + 7) pos = pos + 8
    else local n = u32(pos + 4) word(pos) word(pos + 4) out[#out + 1] = le:sub(pos + 8, pos + 7 + padded(n)) pos = pos + 8 + padded(n) end
    if class == 2 then -- struct: field name length, field names
      word(pos) word(pos + 4)
      local n = u32(pos + 12)
      word(pos + 8) word(pos + 12)
      out[#out + 1] = le:sub(pos + 16, pos + 15 + padded(n))
      pos = pos + 16 + padded(n)
    end
    if class == 1 or class == 2 then
      while pos < stop do
        local n = u32(pos + 4)
        word(pos) word(pos + 4)
        matrix(pos + 8, pos + 8 + n)
        pos = pos + 8 + n
      end
    else
      while pos < stop do pos = data(pos) end
    end
  end
  out[1] = le:sub(1, 124) .. '\1\0MI'
  local pos = 129
  while pos <= #le do
    local n = u32(pos + 4)
    word(pos) word(pos + 4)
    matrix(pos + 8, pos + 8 + n)
    pos = pos + 8 + n
  end
  return table.concat(out)
end
write(out .. '/cars/annos-be.mat', big_endian(read(out .. '/cars/annos.mat')))
write(out .. '/cars/meta-be.mat', big_endian(read(out .. '/cars/meta.mat')))

-- images: the first byte picks the channels (0 as stored, 1, 3)
local function save(name, x, jpeg, progressive, chbyte)
  if jpeg then image.saveJpeg(tmp, x, 80, progressive) else image.save(tmp, x) end
  write(out .. '/image/' .. name, string.char(chbyte) .. read(tmp))
end
save('rgb.png', img(3, 6, 5), false, false, 0)
save('gray.png', img(1, 7, 4), false, false, 2)
save('rgb.jpg', img(3, 9, 11), true, false, 1)
save('gray.jpg', img(1, 8, 8), true, false, 0)
save('progressive.jpg', img(3, 16, 16), true, true, 2)

-- checkpoint: with and without tensors
checkpoint.save(tmp, {{'w', crlab.ones({2, 3})}, {'b', crlab.zeros({3}, 'int32')}, {'u', img(1, 2, 2)}}, {epoch = '3'})
write(out .. '/checkpoint/model.safetensors', read(tmp))
checkpoint.save(tmp, {}, {note = 'empty'})
write(out .. '/checkpoint/empty.safetensors', read(tmp))

-- JSON: a checkpoint header and a few values
local st = read(out .. '/checkpoint/model.safetensors')
local n = 0
for i = 8, 1, -1 do n = n * 256 + st:byte(i) end
write(out .. '/json/header.json', st:sub(9, 8 + n))
write(out .. '/json/values.json', '[1, -2.5e3, "a\\u00e9\\n", true, false, null, {"k": [[]], "": {}}]')

-- CUB-200: images.txt, image_class_labels.txt, train_test_split.txt,
-- bounding_boxes.txt, classes.txt, NUL-separated (the harness's images: a/1.png, a/2.jpg)
write(out .. '/cub200/two.txt', table.concat({'1 a/1.png\n2 a/2.jpg\n', '1 1\n2 2\n', '1 1\n2 0\n',
      '1 2.0 3.0 8.0 6.0\n2 0 0 16 12\n', '1 001.Black\n2 002.Laysan\n'}, '\0'))
write(out .. '/cub200/crlf.txt', table.concat({'1 a/2.jpg\r\n', '1 3\r\n', '1 1\r\n', '1 1 1 4 4\r\n'}, '\0'))

-- Adience: fold_0..4_data.txt, NUL-separated (images: aligned/u1/landmark_aligned_face.1.p1.jpg, .2.p2.png)
local header = 'user_id\toriginal_image\tface_id\tage\tgender\tx\ty\tdx\tdy\ttilt_ang\tfiducial_yaw_angle\tfiducial_score\n'
local function row(face, age) return table.concat({'u1', 'p' .. face .. (face == 1 and '.jpg' or '.png'), tostring(face), age, 'f', '0', '0', '10', '10', '0', '0', '1'}, '\t') .. '\n' end
write(out .. '/adience/folds.txt', table.concat({header .. row(1, '(0, 2)'), header .. row(2, '(60, 100)'),
      header .. row(1, '(25, 32)') .. row(2, 'None'), header, header .. row(2, '35')}, '\0'))
os.remove(tmp)
