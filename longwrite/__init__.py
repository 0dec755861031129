"""longwrite: ultra-long writing with LongWriter-Zero.

The package is split by stage (see DESIGN.md): prompting -> engine -> stream parser ->
renderer. Importing the package is cheap: nothing here pulls in torch, transformers or vllm.
"""

__version__ = "0.1.0"
