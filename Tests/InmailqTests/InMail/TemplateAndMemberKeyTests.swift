import InMail
import Testing

@Suite("Templates and member keys")
struct TemplateAndMemberKeyTests {
    let known: Set<String> = ["first_name", "last_name", "company", "title", "favourite_tool"]

    @Test func personalisationFillsFieldsAndFallbacks() throws {
        let template = try MessageTemplate("Hi {{ first_name | there }}, how is {{company}} using {{favourite_tool|spreadsheets}}?")
        #expect(template.fieldNames == ["first_name", "company", "favourite_tool"])
        #expect(try template.render(["first_name": "Zoë", "company": "Acme", "favourite_tool": "Rust"], limit: 1_900, part: "step 1 body")
            == "Hi Zoë, how is Acme using Rust?")
        #expect(try template.render(["company": "Acme", "first_name": "  "], limit: 1_900, part: "step 1 body")
            == "Hi there, how is Acme using spreadsheets?")
        #expect(throws: TemplateError.missingValue(part: "step 1 body", field: "company")) {
            try template.render(["first_name": "Zoë"], limit: 1_900, part: "step 1 body")
        }
    }

    @Test func valuesAreTrimmedOfSpacesAndLineBreaksAndFieldNamesAreLettersDigitsAndUnderscores() throws {
        let template = try MessageTemplate("{{\tFirst_Name\u{00A0}|\u{2003}friend }} at {{company|your company}}.")
        #expect(template.fieldNames == ["first_name", "company"])
        // Spaces, tabs, no-break and em spaces, line breaks and a line separator around a value go;
        // inside it they stay, and so do characters that only look blank (a zero-width joiner).
        #expect(try template.render(["first_name": "\u{00A0}\t Zoë Ann \r\n", "company": "\u{2028}Acme\u{200D}"], limit: 100, part: "step 1 body")
            == "Zoë Ann at Acme\u{200D}.")
        #expect(try template.render(["first_name": "\n\u{3000}\u{85}"], limit: 100, part: "step 1 body") == "friend at your company.")
        for malformed in ["{{1st}}", "{{first-name}}", "{{né}}", "{{ | there}}", "{{first name}}"] {
            #expect(throws: TemplateError.self, "\(malformed)") { try MessageTemplate(malformed) }
        }
        #expect(try MessageTemplate("no fields, {single} braces }} alone").render([:], limit: 100, part: "step 1 body")
            == "no fields, {single} braces }} alone")
    }

    @Test func S5_activationRefusesUnknownFieldsAndTextsThatCannotFitNamingStepAndField() throws {
        let unknown = try MessageTemplate("Hello {{nickname}}")
        #expect(throws: TemplateError.unknownField(part: "step 2 body", field: "nickname", known: known.sorted())) {
            try unknown.validate(knownFields: known, limit: 1_900, part: "step 2 body")
        }
        let subject = try MessageTemplate(String(repeating: "x", count: 190) + " {{company|a company that is long}}")
        #expect(subject.shortestLength == 190 + 1 + 22)
        #expect(throws: TemplateError.tooLong(part: "step 1 subject", length: 213, limit: 200)) {
            try subject.validate(knownFields: known, limit: 200, part: "step 1 subject")
        }
        #expect(throws: TemplateError.self) { try MessageTemplate("Hi {{first_name") }
        #expect(throws: TemplateError.self) { try MessageTemplate("Hi {{ }}") }
    }

    @Test func S5_theLimitAppliesToTheTextAfterPersonalisation() throws {
        let body = try MessageTemplate(String(repeating: "a", count: 1_890) + " {{company}}")
        #expect(try body.render(["company": "Acme Co"], limit: 1_900, part: "step 1 body").count == 1_898)
        #expect(try body.render(["company": "Acme Corp"], limit: 1_900, part: "step 1 body").count == 1_900)
        #expect(throws: TemplateError.tooLong(part: "step 1 body", length: 1_907, limit: 1_900)) {
            try body.render(["company": "Acme Corporation"], limit: 1_900, part: "step 1 body")
        }
    }

    @Test func C2_pastedProfileLinksNormaliseToOneMemberKey() throws {
        let same = [
            "https://www.linkedin.com/in/lisa",
            "linkedin.com/in/lisa/",
            "www.linkedin.com/in/Lisa?trk=public_profile",
            "http://uk.linkedin.com/in/lisa#experience",
            "https://m.linkedin.com/in/lisa",
            "https://www.linkedin.com/mwlite/in/lisa",
            "  https://linkedin.com/in/lisa/?originalSubdomain=de  ",
        ]
        for link in same {
            #expect(try MemberKey(profileURL: link).value == "in:lisa", "\(link)")
        }
        #expect(try MemberKey(profileURL: "https://www.linkedin.com/in/zo%C3%AB-m%C3%BCller-1a2b3c/").value == "in:zoë-müller-1a2b3c")
        #expect(try MemberKey(profileURL: "https://www.linkedin.com/in/zoë-müller-1a2b3c").value == "in:zoë-müller-1a2b3c")
        #expect(try MemberKey(profileURL: "https://www.linkedin.com/sales/lead/ACwAAA1B2C3,NAME_SEARCH,xYz1?_ntb=abc").value == "sales:ACwAAA1B2C3")
    }

    /// Plain links are read byte by byte, the rest by Foundation's URL parser; a link with
    /// spaces around it always takes the second way, so both readings of each link are compared.
    @Test func C2_theQuickReadingOfPlainLinksAgreesWithTheFullParser() {
        let links = [
            "https://www.linkedin.com/in/lisa", "HTTPS://WWW.LINKEDIN.COM/in/Lisa-Marie_2/", "http://linkedin.com/in/a1",
            "www.linkedin.com/in/lisa?trk=public_profile&x=1#about", "uk.linkedin.com/in/lisa/#top?x",
            "https://www.linkedin.com/in/lisa?q=%20a%2Fb", "https://www.linkedin.com/in/lisa?q=%2", "https://www.linkedin.com/in/lisa?q=%zz",
            "https://www.linkedin.com/in/lisa?a#b#c", "https://www.linkedin.com/in/lisa?q=<x>", "https://www.linkedin.com/in/lisa/more",
            "https://www.linkedin.com/IN/lisa", "https://www.linkedin.com/in/", "https://www.linkedin.com/in//",
            "https://linkedin.com.evil.com/in/lisa", "https://evil-linkedin.com/in/lisa", "https://www..linkedin.com/in/lisa",
            "https://.linkedin.com/in/lisa", "https://www.linkedin.com./in/lisa", "https://www.linkedin.com:443/in/lisa",
            "https://me@www.linkedin.com/in/lisa", "ftp://linkedin.com/in/lisa", "linkedin.com/in/" + String(repeating: "a", count: 101),
            "linkedin.com/in/" + String(repeating: "a", count: 100), "linkedin.com/in/lisa.m", "linkedin.com/in/zo%C3%AB",
        ]
        for link in links {
            let quick = Result { try MemberKey(profileURL: link).value }
            let full = Result { try MemberKey(profileURL: " \(link) ").value }
            switch (quick, full) {
            case (.success(let a), .success(let b)): #expect(a == b, "\(link)")
            case (.failure, .failure): break
            default: Issue.record("\(link): \(quick) but the full parser gives \(full)")
            }
        }
    }

    @Test func C2_anythingElseIsRejectedWithItsReason() {
        let bad: [(String, String)] = [
            ("", "empty"),
            ("https://example.com/in/lisa", "not a linkedin.com link"),
            ("https://www.linkedin.com/company/acme", "not a profile link"),
            ("https://www.linkedin.com/in/", "not a profile link"),
            ("ftp://linkedin.com/in/lisa", "not a web link"),
            ("https://www.linkedin.com/sales/lead/", "not a profile link"),
            ("https://notlinkedin.com/in/lisa", "not a linkedin.com link"),
        ]
        for (input, reason) in bad {
            do {
                let key = try MemberKey(profileURL: input)
                Issue.record("accepted \(input) as \(key)")
            } catch {
                #expect(error.description.contains(reason), "\(input): \(error)")
            }
        }
    }
}
