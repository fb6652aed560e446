/// Text from outside (a file name, a peer's message) made safe for one line on a terminal.
public enum TerminalText {
    /// `text` with control characters written as escapes: `\n`, `\t`, `\r`, `\e` (ESC, which
    /// starts terminal commands), `\\`, and `\xHH` (`\u{HHHH}` above 0xFF) for the rest of C0,
    /// DEL and C1. Printable text, non-ASCII letters included, is left as it is, so an ordinary
    /// name reads as typed; a name with a newline cannot split a one-line message, and one with
    /// an escape sequence cannot recolour or retitle the terminal.
    public static func escaped(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: needsEscape) else { return text }
        var out = ""
        out.reserveCapacity(text.utf8.count + 8)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            case "\u{1B}": out += "\\e"
            case "\\": out += "\\\\"
            case _ where needsEscape(scalar):
                let hex = String(scalar.value, radix: 16)
                out +=
                    scalar.value <= 0xFF
                    ? "\\x" + String(repeating: "0", count: 2 - hex.count) + hex
                    : "\\u{" + hex + "}"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    /// Control characters (C0, DEL, C1), line and paragraph separators, and the backslash that
    /// escapes begin with (only where something else is escaped: see `escaped`).
    private static func needsEscape(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0..<0x20, 0x7F...0x9F, 0x2028, 0x2029: return true
        default: return false
        }
    }
}
