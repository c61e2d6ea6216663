"""A tiny program for berth's debugger tests: run it, or stop at line 6."""
from calc import add, mean


def main():
    total = add(2, 3)  # BREAKPOINT LINE
    avg = mean([1, 2, 3, total])
    print(f"total={total} mean={avg}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
