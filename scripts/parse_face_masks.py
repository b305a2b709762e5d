"""Make 19-class label maps for a folder of aligned faces with facexlib's parsing net: see
smfd_inference/face_parsing.py.

    python scripts/parse_face_masks.py -i datasets/ffhq_512 -o datasets/ffhq_prepared --size 256
"""
import sys

from smfd_inference.face_parsing import main

if __name__ == '__main__':
    try:
        main()
    except (FileNotFoundError, RuntimeError, ValueError) as err:  # the message names the file: no traceback
        sys.exit(f'parse_face_masks: error: {err}')
