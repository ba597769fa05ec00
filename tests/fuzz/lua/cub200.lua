-- crlab.data.cub200: images.txt, image_class_labels.txt,
-- train_test_split.txt, bounding_boxes.txt and classes.txt, the input's
-- NUL-separated parts in that order, with the boxes read (bbox = true)
-- and the first image of each split loaded. The folder holds
-- images/a/1.png and images/a/2.jpg.
local data = require 'crlab.data'
local split = dofile((os.getenv('CRLAB_HOME') or '.') .. '/tests/fuzz/lua/split.lua')
local names = {'images.txt', 'image_class_labels.txt', 'train_test_split.txt', 'bounding_boxes.txt', 'classes.txt'}
return {
  setup = function(dir) split.make_images({dir .. '/cub/images/a/1.png', dir .. '/cub/images/a/2.jpg'}) end,
  run = function(bytes, dir)
    split.write_files(dir .. '/cub', names, split.parts(bytes))
    split.touch(data.cub200(dir .. '/cub', {bbox = true}))
  end,
}
