# Decodes a `qalign demo make-data` folder into raw RGB arrays for probe.py (the venv's torch has
# no image decoder): DIR/{train,test}.u8 and DIR/{train,test}.labels.json ([image, mos] pairs).
import json
import sys

from PIL import Image

d = sys.argv[1]
train = [(r['image'], float(r['id'].rsplit('->', 1)[1])) for r in json.load(open(f'{d}/train.json'))]
test = [(r['image'], r['gt_score']) for r in json.load(open(f'{d}/test.json'))]
for name, records in (('train', train), ('test', test)):
    with open(f'{d}/{name}.u8', 'wb') as f:
        for image, _ in records:
            f.write(Image.open(f'{d}/{image}').convert('RGB').tobytes())
    json.dump(records, open(f'{d}/{name}.labels.json', 'w'))
