-- crlab.data.adience: fold_0_data.txt .. fold_4_data.txt, the input's
-- NUL-separated parts in that order, read with fold 2 as the test fold
-- and the first image of each split loaded. The folder holds
-- aligned/u1/landmark_aligned_face.1.p1.jpg and ....2.p2.png.
local data = require 'crlab.data'
local split = dofile((os.getenv('CRLAB_HOME') or '.') .. '/tests/fuzz/lua/split.lua')
local names = {}
for f = 0, 4 do names[#names + 1] = 'fold_' .. f .. '_data.txt' end
return {
  setup = function(dir)
    split.make_images({dir .. '/ad/aligned/u1/landmark_aligned_face.1.p1.jpg',
                       dir .. '/ad/aligned/u1/landmark_aligned_face.2.p2.png'})
  end,
  run = function(bytes, dir)
    split.write_files(dir .. '/ad', names, split.parts(bytes))
    split.touch(data.adience(dir .. '/ad', {fold = 2}))
  end,
}
