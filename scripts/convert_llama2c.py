"""Convert a llama2.c checkpoint + tokenizer into a Hugging Face Llama directory.

From the repository root (with alignjax importable, e.g. `pip install -e .`):

    python scripts/convert_llama2c.py --checkpoint ../shared/data/stories260K.bin \
            --tokenizer ../shared/data/tok512.bin --out /tmp/stories260K

The result loads with `transformers.AutoModelForCausalLM.from_pretrained("/tmp/stories260K")`,
`transformers.AutoTokenizer.from_pretrained(...)` and `alignjax.models.from_pretrained(...)`.
All logic lives in `alignjax.models.llama2c`.
"""

import argparse

from alignjax.models.llama2c import convert_llama2c


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="llama2.c legacy checkpoint, e.g. stories260K.bin")
    parser.add_argument("--tokenizer", required=True, help="llama2.c tokenizer, e.g. tok512.bin")
    parser.add_argument("--out", required=True, help="output Hugging Face directory")
    args = parser.parse_args()
    convert_llama2c(args.checkpoint, args.tokenizer, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
