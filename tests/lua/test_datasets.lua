-- The dataset readers on small trees written here in each official
-- layout, with real PNG and JPEG files: CIFAR-10/100, SVHN, CUB-200-2011,
-- Stanford Cars, Adience, ImageNet, plain image folders; labels, class names, splits,
-- pixel values; and the errors for missing or broken pieces.
local t = require 'tap'
local ffi = require 'ffi'
local crlab = require 'crlab'
local data = require 'crlab.data'
local image = require 'crlab.image'
local C = crlab.C

local tmp = os.tmpname()
os.remove(tmp)
local function mkdir(p) os.execute("mkdir -p '" .. p .. "'") end
local write = require('testio').write
mkdir(tmp)

-- a small, smooth image (so JPEG keeps it close) that depends on tag
local function make_image(tag, c, h, w)
  local img = crlab.zeros({c, h, w}, 'uint8')
  for ch = 1, c do
    for y = 1, h do
      for x = 1, w do img[ch][y][x] = 30 + (5 * tag) % 50 + 4 * x + 3 * y + 20 * ch end
    end
  end
  return img
end

local function same(a, b, tol)
  local d = (a:int():float() - b:int():float()):abs():max()
  return d <= (tol or 0), d
end

-- CIFAR-10 and CIFAR-100 records
local cdir = tmp .. '/cifar10'
mkdir(cdir)
local function cifar_records(n, label_bytes, first)
  local parts = {}
  for i = 1, n do
    local lab = label_bytes == 1 and string.char((first + i) % 10) or string.char(i % 20, (first + i) % 100)
    local px = {}
    for k = 0, 3071 do px[#px + 1] = string.char((k + i) % 256) end
    parts[#parts + 1] = lab .. table.concat(px)
  end
  return table.concat(parts)
end
for b = 1, 5 do write(cdir .. '/data_batch_' .. b .. '.bin', cifar_records(3, 1, b * 3)) end
write(cdir .. '/test_batch.bin', cifar_records(2, 1, 0))
write(cdir .. '/batches.meta.txt', 'airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n')
local c10 = data.load('cifar10', cdir)
t.eq(c10.train:size(), 15, 'CIFAR-10: five batch files make one training split')
t.eq(c10.test:size(), 2, 'CIFAR-10: test_batch.bin is the test split')
t.eq(c10.classes[4], 'cat', 'CIFAR-10: class names from batches.meta.txt')
local img, lab = c10.train:get(4) -- batch 2, record 1
t.eq(lab, (6 + 1) % 10, 'CIFAR-10: the label of sample 4')
t.eq(img[2][1][3], (1024 + 2 + 1) % 256, 'CIFAR-10: pixel (G, 0, 2) of sample 4')
t.ok(tostring(c10.recipe.train):find('randomCrop%(32x32, pad 4%)') and tostring(c10.recipe.train):find('hflip'),
     'CIFAR-10: the recipe crops with padding 4 and flips: ' .. tostring(c10.recipe.train))
local c100dir = tmp .. '/cifar100'
mkdir(c100dir)
write(c100dir .. '/train.bin', cifar_records(4, 2, 40))
write(c100dir .. '/test.bin', cifar_records(2, 2, 0))
local c100 = data.load('cifar100', c100dir)
t.eq(#c100.classes, 100, 'CIFAR-100: 100 fine classes')
t.eq(select(2, c100.train:get(2)), 42, 'CIFAR-100: fine label by default')
t.eq(select(2, data.load('cifar100', c100dir, {coarse = true}).train:get(2)), 2, 'CIFAR-100: coarse on request')
write(cdir .. '/data_batch_3.bin', cifar_records(3, 1, 0):sub(1, 5000))
t.errors(function() data.load('cifar10', cdir) end, cdir .. '/data_batch_3.bin', 'a truncated CIFAR batch file is named')
os.remove(cdir .. '/data_batch_5.bin')
t.errors(function() data.load('cifar10', cdir) end, 'missing ' .. cdir .. '/data_batch_5.bin', 'a missing batch file')

-- SVHN through the C writer (libmatio)
local sdir = tmp .. '/svhn'
mkdir(sdir)
local function svhn_file(path, n, first)
  local im = crlab.zeros({n, 3, 32, 32}, 'uint8')
  local flat = im:view(-1)
  for i = 1, flat:numel() do flat[i] = (i * 7 + first) % 256 end
  local lab = crlab.zeros({n}, 'int32')
  for i = 1, n do lab[i] = (first + i) % 10 end
  assert(C.crl_svhn_write(path, im, lab) == 0, ffi.string(C.crl_last_error()))
  return im, lab
end
local sim = svhn_file(sdir .. '/train_32x32.mat', 5, 3)
svhn_file(sdir .. '/test_32x32.mat', 2, 1)
svhn_file(sdir .. '/extra_32x32.mat', 4, 8)
local sv = data.load('svhn', sdir)
t.eq(sv.train:size(), 5, 'SVHN: train_32x32.mat')
t.eq(select(2, sv.train:get(2)), 5, 'SVHN: labels 0-9')
t.ok(same(sv.train:get(3), sim[3]), 'SVHN: pixels as written')
t.eq(data.load('svhn', sdir, {extra = true}).train:size(), 9, 'SVHN: extra adds to training')

-- CUB-200-2011: images/, images.txt, image_class_labels.txt, train_test_split.txt, bounding_boxes.txt
local cub = tmp .. '/CUB_200_2011'
mkdir(cub .. '/images/001.Black_footed_Albatross')
mkdir(cub .. '/images/002.Laysan_Albatross')
local cub_imgs = {}
local listing, labels, split, boxes = {}, {}, {}, {}
for i = 1, 6 do
  local cls = i <= 3 and 1 or 2
  local rel = string.format('%s/img_%d.%s', cls == 1 and '001.Black_footed_Albatross' or '002.Laysan_Albatross', i,
                            i % 2 == 0 and 'png' or 'jpg')
  cub_imgs[i] = make_image(i, 3, 12, 16)
  if i % 2 == 0 then image.save(cub .. '/images/' .. rel, cub_imgs[i]) else image.saveJpeg(cub .. '/images/' .. rel, cub_imgs[i], 98) end
  listing[#listing + 1] = i .. ' ' .. rel
  labels[#labels + 1] = i .. ' ' .. cls
  split[#split + 1] = i .. ' ' .. (i % 3 == 0 and 0 or 1)
  boxes[#boxes + 1] = string.format('%d 2.0 3.0 8.0 6.0', i)
end
write(cub .. '/images.txt', table.concat(listing, '\n') .. '\n')
write(cub .. '/image_class_labels.txt', table.concat(labels, '\n') .. '\n')
write(cub .. '/train_test_split.txt', table.concat(split, '\n') .. '\n')
write(cub .. '/bounding_boxes.txt', table.concat(boxes, '\n') .. '\n')
write(cub .. '/classes.txt', '1 001.Black_footed_Albatross\n2 002.Laysan_Albatross\n')
local cb = data.load('cub200', cub)
t.eq(cb.train:size(), 4, 'CUB: train_test_split.txt puts 4 images in training')
t.eq(cb.test:size(), 2, 'CUB: and 2 in test')
t.eq(cb.classes[2], '002.Laysan_Albatross', 'CUB: class names from classes.txt')
local ci, cl = cb.train:get(3) -- image id 4 (PNG), class 2
t.eq(cl, 1, 'CUB: classes are 0-based (file says 2)')
t.ok(same(ci, cub_imgs[4]), 'CUB: a PNG image reads back exactly')
local cj = cb.train:get(1) -- image 1, JPEG
local okj, dj = same(cj, cub_imgs[1], 8)
t.ok(okj, 'CUB: a JPEG image reads back within JPEG error (max difference ' .. dj .. ' of 8 allowed)')
local bb = data.load('cub200', cub, {bbox = true})
t.eq(tostring(bb.train:get(3):size()), '3x6x8', 'CUB with bounding boxes: the crop is the box (8x6 at 2,3)')
t.ok(same(bb.train:get(3), cub_imgs[4]:narrow(2, 4, 6):narrow(3, 3, 8):contiguous()), 'CUB box crop pixels')
write(cub .. '/images.txt', table.concat(listing, '\n') .. '\n7 001.Black_footed_Albatross/missing.jpg\n')
t.errors(function() data.load('cub200', cub) end, 'images.txt line 7 names ' .. cub ..
         '/images/001.Black_footed_Albatross/missing.jpg, which does not exist', 'a split file naming a missing image')
-- found by the fuzzer (tests/fuzz/corpus/cub200/short-box.txt): a box of fewer than 4 numbers
write(cub .. '/images.txt', table.concat(listing, '\n') .. '\n')
write(cub .. '/bounding_boxes.txt', '1 2.0 3.0 8.0\n' .. table.concat(boxes, '\n', 2) .. '\n')
t.errors(function() data.load('cub200', cub, {bbox = true}) end, cub .. '/bounding_boxes.txt line 1 is not ' ..
         '"<id> <x> <y> <width> <height>": "1 2.0 3.0 8.0"', 'CUB: a bounding box of 3 numbers is a clean error')
write(cub .. '/bounding_boxes.txt', '1 2 3 8 six\n' .. table.concat(boxes, '\n', 2) .. '\n')
t.errors(function() data.load('cub200', cub, {bbox = true}) end, 'bounding_boxes.txt line 1 is not',
         'CUB: a bounding box with a word for a number is a clean error')
write(cub .. '/bounding_boxes.txt', table.concat(boxes, '\n') .. '\n')
-- found by the fuzzer (a timeout): a class number of 76 digits made the class-name loop run for ever
write(cub .. '/image_class_labels.txt', '1 1\n2 ' .. ('6'):rep(75) .. '2\n' .. table.concat(labels, '\n', 3) .. '\n')
t.errors(function() data.load('cub200', cub) end, cub .. '/image_class_labels.txt line 2: class ' .. ('6'):rep(75) ..
         '2 of image 2 is not an integer in 1..100000', 'CUB: an absurd class number is a clean error, at once')
write(cub .. '/image_class_labels.txt', '1 1\n2 1.5\n' .. table.concat(labels, '\n', 3) .. '\n')
t.errors(function() data.load('cub200', cub) end, 'class 1.5 of image 2 is not an integer',
         'CUB: a fractional class number is a clean error')
write(cub .. '/image_class_labels.txt', table.concat(labels, '\n') .. '\n')

-- Stanford Cars: cars_train/, cars_test/, devkit/cars_meta.mat, devkit/cars_train_annos.mat,
-- cars_test_annos_withlabels.mat (MATLAB files written by the C writer, through libmatio)
local cars = tmp .. '/stanford_cars'
mkdir(cars .. '/cars_train')
mkdir(cars .. '/cars_test')
mkdir(cars .. '/devkit')
local function bytes(s)
  local b = crlab.zeros({#s}, 'uint8')
  ffi.copy(C.crl_tensor_data(b), s, #s)
  return b
end
-- rows of {class (1-based, as in the file), x1, y1, x2, y2 (1-based, inclusive), fname}
local function cars_annos(path, rows, compress)
  local lab, box, names = crlab.zeros({#rows}, 'int32'), crlab.zeros({#rows, 4}), {}
  for i, r in ipairs(rows) do
    lab[i] = r[1] - 1
    box[i][1], box[i][2], box[i][3], box[i][4] = r[2] - 1, r[3] - 1, r[4] - r[2] + 1, r[5] - r[3] + 1
    names[i] = r[6]
  end
  assert(C.crl_cars_annos_write(path, lab, box, bytes(table.concat(names, '\n')), compress or 0) == 0,
         ffi.string(C.crl_last_error()))
end
local car_names = {}
for i = 1, 196 do car_names[i] = 'Make ' .. i .. ' Sedan ' .. (1990 + i % 23) end
car_names[2] = 'Acura RL Sedan 2012'
assert(C.crl_cars_meta_write(cars .. '/devkit/cars_meta.mat', bytes(table.concat(car_names, '\n')), 1) == 0)
local car_imgs = {}
for i = 1, 6 do
  car_imgs[i] = make_image(i + 10, 3, 14, 18)
  local folder = i <= 4 and 'cars_train' or 'cars_test'
  local name = string.format('%05d.%s', i <= 4 and i or i - 4, i % 2 == 0 and 'png' or 'jpg')
  if i % 2 == 0 then image.save(cars .. '/' .. folder .. '/' .. name, car_imgs[i])
  else image.saveJpeg(cars .. '/' .. folder .. '/' .. name, car_imgs[i], 98) end
end
local train_rows = {{2, 3, 4, 12, 9, '00001.jpg'}, {196, 1, 1, 18, 14, '00002.png'}, {14, 5, 2, 9, 11, '00003.jpg'},
                    {2, 7, 6, 16, 13, '00004.png'}}
cars_annos(cars .. '/devkit/cars_train_annos.mat', train_rows, 1)
local test_rows = {{1, 2, 2, 10, 10, '00001.jpg'}, {3, 1, 3, 14, 12, '00002.png'}}
cars_annos(cars .. '/cars_test_annos_withlabels.mat', test_rows)
local cr = data.load('cars', cars)
t.eq(cr.train:size(), 4, 'Cars: devkit/cars_train_annos.mat lists 4 training images')
t.eq(cr.test:size(), 2, 'Cars: cars_test_annos_withlabels.mat lists 2 test images')
t.eq(#cr.classes, 196, 'Cars: 196 class names from devkit/cars_meta.mat')
t.eq(cr.classes[2], 'Acura RL Sedan 2012', 'Cars: class 2 is named as in the file')
t.eq(table.concat({cr.train.labels[1], cr.train.labels[2], cr.train.labels[3], cr.test.labels[2]}, ','), '1,195,13,2',
     'Cars: labels are the file\'s classes minus 1')
t.ok(cr.train.paths[3] == cars .. '/cars_train/00003.jpg' and cr.test.paths[2] == cars .. '/cars_test/00002.png',
     'Cars: images from cars_train/ and cars_test/ by fname')
t.ok(same(cr.train:get(4), car_imgs[4]), 'Cars: without bbox the whole PNG image reads back exactly')
t.ok(tostring(cr.recipe.train):find('randomResizedCrop%(224x224') and tostring(cr.recipe.train):find('hflip') and
     tostring(cr.recipe.test):find('centerCrop%(224x224'), 'Cars: the recipe is CUB-200\'s (224 crops, flips)')
local cbb = data.load('cars', cars, {bbox = true})
-- train 4: x1..x2 = 7..16, y1..y2 = 6..13 (1-based, inclusive): 10 wide, 8 high at (6, 5) 0-based
t.eq(tostring(cbb.train:get(4):size()), '3x8x10', 'Cars with bbox: the crop is the box, corners included')
t.ok(same(cbb.train:get(4), car_imgs[4]:narrow(2, 6, 8):narrow(3, 7, 10):contiguous()), 'Cars box crop pixels')
t.eq(tostring(cbb.train:get(2):size()), '3x14x18', 'Cars: a box of the whole image crops nothing')
t.eq(tostring(cbb.test:get(2):size()), '3x10x14', 'Cars: test images are cropped to their boxes too')
-- the boxes reach the C loader as they reach Split:get: one unshuffled batch, centre crops of the box crops
local Tr = require 'crlab.transforms'
local ld = data.loader(cbb.train:head(2), {batch = 2, shuffle = false, threads = 1, transform = Tr.compose{Tr.centerCrop(6)}})
local _, lx = ld:epoch()()
local d1 = (lx[1] - cbb.train:get(1):narrow(3, 3, 6):float() / 255):abs():max()
local d2 = (lx[2] - cbb.train:get(2):narrow(2, 5, 6):narrow(3, 7, 6):float() / 255):abs():max()
t.ok(d1 < 1e-6 and d2 < 1e-6, 'Cars: the loader crops to the same boxes as Split:get (max differences ' .. d1 .. ', ' .. d2 .. ')')
ld:close()
-- the test labels may sit in devkit/ instead
os.rename(cars .. '/cars_test_annos_withlabels.mat', cars .. '/devkit/cars_test_annos_withlabels.mat')
t.eq(data.load('cars', cars).test:size(), 2, 'Cars: cars_test_annos_withlabels.mat is also found in devkit/')
os.remove(cars .. '/devkit/cars_test_annos_withlabels.mat')
cars_annos(cars .. '/devkit/cars_test_annos.mat', test_rows)
t.errors(function() data.load('cars', cars) end, 'missing ' .. cars .. '/cars_test_annos_withlabels.mat (nor in ' ..
         cars .. '/devkit/): the test labels', 'Cars: without the labelled test annotations the error says which file')
cars_annos(cars .. '/cars_test_annos_withlabels.mat', test_rows)
-- damaged or wrong files, each named
local function train_with(rows, what)
  cars_annos(cars .. '/devkit/cars_train_annos.mat', rows)
  local ok, err = pcall(data.load, 'cars', cars)
  cars_annos(cars .. '/devkit/cars_train_annos.mat', train_rows, 1)
  return not ok and err or 'no error (' .. what .. ')'
end
local err = train_with({train_rows[1], {197, 1, 1, 5, 5, '00002.png'}}, 'class 197')
t.ok(err:find(cars .. '/devkit/cars_train_annos.mat\': annotations(2).class = 197 is not a class in 1..196', 1, true),
     'Cars: class 197 is refused naming the file and the entry: ' .. err)
assert(C.crl_cars_meta_write(cars .. '/devkit/cars_meta.mat', bytes(table.concat(car_names, '\n', 1, 10)), 0) == 0)
err = select(2, pcall(data.load, 'cars', cars))
t.ok(tostring(err):find('annotations(2).class = 196 is not a class in 1..10 (the class names number 10)', 1, true),
     'Cars: a class beyond cars_meta.mat\'s names is refused: ' .. tostring(err))
assert(C.crl_cars_meta_write(cars .. '/devkit/cars_meta.mat', bytes(table.concat(car_names, '\n')), 1) == 0)
err = train_with({train_rows[1], {5, 1, 1, 5, 5, '09999.jpg'}}, 'missing image')
t.ok(err:find('cars_train_annos.mat: annotations(2).fname names ' .. cars .. '/cars_train/09999.jpg, which does not ' ..
              'exist', 1, true), 'Cars: an fname naming a missing image is refused: ' .. err)
-- the field 'class' renamed in the file: what devkit/cars_test_annos.mat lacks
cars_annos(cars .. '/devkit/cars_train_annos.mat', train_rows)
local f = assert(io.open(cars .. '/devkit/cars_train_annos.mat', 'rb'))
local mat = f:read('*a')
f:close()
local at = mat:find('class\0', 1, true)
write(cars .. '/devkit/cars_train_annos.mat', mat:sub(1, at - 1) .. 'clasz' .. mat:sub(at + 5))
t.errors(function() data.load('cars', cars) end, "cars_train_annos.mat': annotations has no field 'class'",
         'Cars: annotations without a class field are refused')
write(cars .. '/devkit/cars_train_annos.mat', mat:sub(1, #mat - 40))
t.errors(function() data.load('cars', cars) end, cars .. "/devkit/cars_train_annos.mat' is truncated",
         'Cars: a cut annotations file is refused')
write(cars .. '/devkit/cars_train_annos.mat', mat)
os.remove(cars .. '/devkit/cars_meta.mat')
t.errors(function() data.load('cars', cars) end, 'missing ' .. cars .. '/devkit/cars_meta.mat', 'Cars: a missing devkit file')

-- Adience: aligned/<user>/landmark_aligned_face.<face>.<original> (or faces/...), fold_k_data.txt
local ad = tmp .. '/adience'
mkdir(ad .. '/aligned/u1')
local header = 'user_id\toriginal_image\tface_id\tage\tgender\tx\ty\tdx\tdy\ttilt_ang\tfiducial_yaw_angle\tfiducial_score'
local ages = {'(0, 2)', '(25, 32)', 'None', '(60, 100)', '35'}
for f = 0, 4 do
  local rows = {header}
  for k = 1, 2 do
    local face = f * 10 + k
    local orig = 'photo' .. face .. '.jpg'
    image.saveJpeg(string.format('%s/aligned/u1/landmark_aligned_face.%d.%s', ad, face, orig), make_image(face, 3, 10, 10))
    rows[#rows + 1] = table.concat({'u1', orig, tostring(face), ages[(f + k) % 5 + 1], 'f', '0', '0', '10', '10', '0', '0', '1'}, '\t')
  end
  write(ad .. '/fold_' .. f .. '_data.txt', table.concat(rows, '\n') .. '\n')
end
local a2 = data.load('adience', ad, {fold = 2})
t.eq(#a2.classes, 8, 'Adience: 8 age groups')
t.eq(a2.train:size() + a2.test:size() + a2.skipped, 10, 'Adience: every row is train, test or skipped')
t.ok(a2.skipped == 4, 'Adience: rows with ages outside the 8 groups are counted as skipped (' .. a2.skipped .. ')')
local a0 = data.load('adience', ad, {fold = 0})
t.ok(a0.ordinal == true, "Adience is marked ordinal: the trainer reports its one-off accuracy (test_oneoff)")
t.ok(a0.test.paths[1] ~= a2.test.paths[1], 'Adience: another fold tests on other faces')
local found = false
for i = 1, a2.test:size() do
  if a2.test.paths[i]:find('landmark_aligned_face.21.photo21.jpg', 1, true) then
    found = a2.test.labels[i] == 7 -- fold 2, k = 1: ages[(2+1)%5+1] = '(60, 100)' -> group 7
  end
end
t.ok(found, 'Adience: the fold-2 face in age group (60, 100) is in the fold-2 test split with label 7')
t.errors(function() data.load('adience', ad, {fold = 5}) end, 'fold must be 0..4', 'a fold outside 0..4')
-- the other official archive, faces.tar.gz: faces/<user>/coarse_tilt_aligned_face.<face>.<original>
local adf = tmp .. '/adience-faces'
mkdir(adf .. '/faces/u1')
for f = 0, 4 do
  os.execute(string.format("cp '%s/fold_%d_data.txt' '%s/'", ad, f, adf))
  for k = 1, 2 do
    local face = f * 10 + k
    image.saveJpeg(string.format('%s/faces/u1/coarse_tilt_aligned_face.%d.photo%d.jpg', adf, face, face),
                   make_image(face, 3, 10, 10))
  end
end
local ok_faces, af = pcall(data.load, 'adience', adf, {fold = 2})
t.ok(ok_faces and af.train:size() == a2.train:size() and af.test:size() == a2.test:size() and af.skipped == 4 and
     af.test.paths[1]:find('/faces/u1/coarse_tilt_aligned_face.', 1, true) ~= nil,
     'Adience unpacked from faces.tar.gz (faces/<user>/coarse_tilt_aligned_face.*) is read as the aligned one: ' ..
     tostring(ok_faces and af.test.paths[1] or af))
local fi = ok_faces and af.test:get(1)
t.ok(fi and same(fi, a2.test:get(1), 8), 'Adience faces layout: the same face reads the same image')
mkdir(tmp .. '/adience-none')
t.errors(function() data.load('adience', tmp .. '/adience-none') end, "holds neither 'aligned/' (aligned.tar.gz) " ..
         "nor 'faces/' (faces.tar.gz)", 'a folder with neither Adience archive unpacked is named')
write(ad .. '/fold_3_data.txt', header .. '\nu1\tnope.jpg\t99\t(0, 2)\tm\t0\t0\t1\t1\t0\t0\t1\n')
t.errors(function() data.load('adience', ad) end, 'fold_3_data.txt line 2 names', 'a fold file naming a missing face')

-- ImageNet: train/<wnid>/*.JPEG, val/<wnid>/*.JPEG
local inet = tmp .. '/imagenet'
for _, sp in ipairs({'train', 'val'}) do
  for _, w in ipairs({'n01440764', 'n01443537', 'n01484850'}) do
    mkdir(inet .. '/' .. sp .. '/' .. w)
    for k = 1, (sp == 'train' and 2 or 1) do
      image.saveJpeg(string.format('%s/%s/%s/%s_%d.JPEG', inet, sp, w, w, k), make_image(k, 3, 20, 30))
    end
  end
end
write(inet .. '/train/n01440764/README.txt', 'not an image')
local im = data.load('imagenet', inet)
t.eq(table.concat(im.classes, ','), 'n01440764,n01443537,n01484850', 'ImageNet: classes are the sorted wnids')
t.eq(im.train:size(), 6, 'ImageNet: train images (other files ignored)')
t.eq(im.test:size(), 3, 'ImageNet: val images')
t.eq(im.train.labels[3], 1, 'ImageNet: labels follow the wnid order')
t.ok(tostring(im.recipe.train):find('randomResizedCrop%(224x224') and tostring(im.recipe.test):find('centerCrop%(224x224'),
     'ImageNet: the recipe is random-resized-crop 224 / resize 256 + centre crop 224')
mkdir(inet .. '/val/n99999999')
t.errors(function() data.load('imagenet', inet) end, 'they must match', 'val and train with different class folders')
mkdir(tmp .. '/empty')
t.errors(function() data.load('imagenet', tmp .. '/empty') end, 'cannot open the folder', 'a folder without train/')
mkdir(tmp .. '/emptyclasses/a')
t.errors(function() data.folder(tmp .. '/emptyclasses') end, 'holds no PNG or JPEG images', 'an empty image folder')
t.errors(function() data.load('nope', tmp) end, "unknown dataset 'nope'", 'an unknown dataset')

os.execute("rm -rf '" .. tmp .. "'")
t.done()
