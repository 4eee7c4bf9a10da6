import Foundation

/// Charts drawn on the server as inline SVG: no script, no other site's resources.
enum SVGChart {
    /// Grouped bars, one group per label, one bar per series (name, values, colour); a legend
    /// above, every label below when they fit (else every few), the largest value on the axis.
    static func bars(labels: [String], series: [(name: String, values: [Double], colour: String)], title: String) -> String {
        let width = 720.0, height = 220.0, left = 40.0, bottom = 30.0, top = 30.0
        let plotHeight = height - bottom - top
        let largest = max(1, series.flatMap(\.values).max() ?? 1)
        let groupWidth = (width - left - 10) / Double(max(1, labels.count))
        let barWidth = max(1, (groupWidth - 4) / Double(max(1, series.count)))
        let labelEvery = max(1, Int((Double(labels.count) * 40 / (width - left)).rounded(.up)))
        var svg = """
            <svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 \(Int(width)) \(Int(height))" width="\(Int(width))" height="\(Int(height))" role="img" aria-label="\(escape(title))">
            <title>\(escape(title))</title>
            <line x1="\(left)" y1="\(top + plotHeight)" x2="\(width - 10)" y2="\(top + plotHeight)" stroke="#888"/>
            <text x="\(left - 4)" y="\(top + 4)" text-anchor="end" font-size="10">\(format(largest))</text>
            <text x="\(left - 4)" y="\(top + plotHeight)" text-anchor="end" font-size="10">0</text>

            """
        var legendX = left
        for item in series {
            svg += "<rect x=\"\(legendX)\" y=\"6\" width=\"10\" height=\"10\" fill=\"\(item.colour)\"/>"
            svg += "<text x=\"\(legendX + 14)\" y=\"15\" font-size=\"11\">\(escape(item.name))</text>\n"
            legendX += 24 + Double(item.name.count) * 6.5
        }
        for (index, label) in labels.enumerated() {
            let groupX = left + 2 + Double(index) * groupWidth
            for (seriesIndex, item) in series.enumerated() {
                let value = index < item.values.count ? item.values[index] : 0
                let barHeight = plotHeight * value / largest
                let x = groupX + Double(seriesIndex) * barWidth
                svg += "<rect x=\"\(rounded(x))\" y=\"\(rounded(top + plotHeight - barHeight))\" width=\"\(rounded(barWidth))\" "
                    + "height=\"\(rounded(barHeight))\" fill=\"\(item.colour)\"><title>\(escape(label)): \(format(value)) \(escape(item.name))</title></rect>\n"
            }
            if index % labelEvery == 0 {
                svg += "<text x=\"\(rounded(groupX + groupWidth / 2))\" y=\"\(height - 12)\" text-anchor=\"middle\" font-size=\"10\">\(escape(label))</text>\n"
            }
        }
        return svg + "</svg>"
    }

    private static func rounded(_ value: Double) -> String { String(format: "%.1f", value) }

    private static func format(_ value: Double) -> String {
        value == value.rounded() ? String(Int(value)) : String(format: "%.1f", value)
    }

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }
}
