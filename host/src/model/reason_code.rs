//! ISO 20022 external status reason codes (ExternalStatusReason1Code).
//!
//! The codes a rule may give when it rejects a payment, and the codes payrules itself
//! uses. Taken from the ISO 20022 External Code Sets publication; sorted, so a look-up is
//! a binary search.

/// Every code of the set, sorted.
const CODES: &[&str] = &[
    "AB01", "AB02", "AB03", "AB04", "AB05", "AB06", "AB07", "AB08", "AB09", "AB10", "AB11", "AB12",
    "AB13", "AB15", "AB21", "AB26", "AC01", "AC02", "AC03", "AC04", "AC05", "AC06", "AC07", "AC08",
    "AC09", "AC10", "AC11", "AC12", "AC13", "AC14", "AC15", "AC16", "AEXR", "AG01", "AG02", "AG03",
    "AG04", "AG05", "AG06", "AG07", "AG08", "AG09", "AG10", "AG11", "AG12", "AG13", "AGNT", "ALAC",
    "AM01", "AM02", "AM03", "AM04", "AM05", "AM06", "AM07", "AM09", "AM10", "AM11", "AM12", "AM13",
    "AM14", "AM15", "AM16", "AM17", "AM18", "AM19", "AM20", "AM21", "AM22", "AM23", "AMSE", "APAR",
    "ARFR", "ARJR", "ATNS", "BDAY", "BE01", "BE04", "BE05", "BE06", "BE07", "BE08", "BE09", "BE10",
    "BE11", "BE12", "BE13", "BE14", "BE15", "BE16", "BE17", "BE18", "BE19", "BE20", "BE21", "BE22",
    "BE23", "CERI", "CH03", "CH04", "CH07", "CH09", "CH10", "CH11", "CH12", "CH13", "CH14", "CH15",
    "CH16", "CH17", "CH19", "CH20", "CH21", "CH22", "CHCO", "CHQC", "CHRG", "CN01", "CNNS", "CNOR",
    "CURR", "CUST", "DC02", "DNOR", "DS01", "DS02", "DS03", "DS04", "DS05", "DS06", "DS07", "DS08",
    "DS09", "DS0A", "DS0B", "DS0C", "DS0D", "DS0E", "DS0F", "DS0G", "DS0H", "DS0K", "DS10", "DS11",
    "DS12", "DS13", "DS14", "DS15", "DS16", "DS17", "DS18", "DS19", "DS20", "DS21", "DS22", "DS23",
    "DS24", "DS25", "DS26", "DS27", "DS28", "DT01", "DT02", "DT03", "DT04", "DT05", "DT06", "DU01",
    "DU02", "DU03", "DU04", "DU05", "DUPL", "ED01", "ED03", "ED05", "ED06", "EDNA", "EDTL", "EDTR",
    "EOL1", "ERIN", "FF01", "FF02", "FF03", "FF04", "FF05", "FF06", "FF07", "FF08", "FF09", "FF10",
    "FF11", "FF12", "FF13", "FOCR", "FR01", "FRAD", "G000", "G001", "G002", "G003", "G004", "G005",
    "G006", "ID01", "IEDT", "INAR", "INDT", "IPNS", "IRNR", "ISWS", "MD01", "MD02", "MD05", "MD06",
    "MD07", "MINF", "MS02", "MS03", "NARR", "NERI", "NOAR", "NOAS", "NOCM", "NOFR", "NOPG", "NRCH",
    "OSNS", "PINS", "RC01", "RC02", "RC03", "RC04", "RC05", "RC06", "RC07", "RC08", "RC09", "RC10",
    "RC11", "RC12", "RC13", "RC15", "RC16", "RCON", "RECI", "REPR", "RF01", "RQNR", "RR01", "RR02",
    "RR03", "RR04", "RR05", "RR06", "RR07", "RR08", "RR09", "RR10", "RR11", "RR12", "RTNS", "RUTA",
    "S000", "S001", "S002", "S003", "S004", "SBRN", "SL01", "SL02", "SL03", "SL11", "SL12", "SL13",
    "SL14", "SL15", "SL16", "SL17", "SL18", "SNRD", "SPII", "TA01", "TD01", "TD02", "TD03", "TK01",
    "TK02", "TK03", "TK09", "TKCM", "TKSG", "TKSP", "TKVE", "TKXP", "TM01", "TS01", "TS04", "UCRD",
    "UPAY",
];

/// Whether `code` is an ISO 20022 external status reason code.
pub fn is_status_reason_code(code: &str) -> bool {
    CODES.binary_search(&code).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_code_list_is_sorted_so_binary_search_works() {
        assert!(CODES.windows(2).all(|pair| pair[0] < pair[1]));
    }

    #[test]
    fn known_codes_are_found_and_others_are_not() {
        for code in ["RR04", "AM02", "AG01", "FRAD", "MS03", "AC01"] {
            assert!(is_status_reason_code(code), "{code}");
        }
        for code in ["rr04", "XX99", "", "RR04 ", "sanctions-weak-match"] {
            assert!(!is_status_reason_code(code), "{code}");
        }
    }
}
