import os
import sys

# tools/ on the path, so that `import relaybench` works from any directory (as tools/bench does it).
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
