//! The block list of a blob put in blocks (`PUT …?comp=blocklist`), as
//! `azure-storage-blob` sends it for a context above its single-put size (64 MiB):
//! `<BlockList><Latest>id</Latest>…</BlockList>`, the blocks in the blob's order.

use serde::Deserialize;

/// The most blocks one blob may have (Azure Blob Storage's own limit).
pub const MAX_BLOCKS: usize = 50_000;

#[derive(Debug, Deserialize)]
struct BlockList {
    #[serde(rename = "$value", default)]
    blocks: Vec<Block>,
}

#[derive(Debug, Deserialize)]
enum Block {
    Latest(String),
    Committed(String),
    Uncommitted(String),
}

/// The block ids of a block list, in order; or what is wrong with it.
pub fn block_ids(xml: &str) -> Result<Vec<String>, String> {
    let list: BlockList = quick_xml::de::from_str(xml).map_err(|e| format!("the block list is not a BlockList: {e}"))?;
    if list.blocks.len() > MAX_BLOCKS {
        return Err(format!("the block list names {} blocks, more than {MAX_BLOCKS}", list.blocks.len()));
    }
    Ok(list
        .blocks
        .into_iter()
        .map(|b| match b {
            Block::Latest(id) | Block::Committed(id) | Block::Uncommitted(id) => id,
        })
        .collect())
}

/// A block id as the file name it is staged under: the hex of its bytes, which Azure
/// bounds to 64 (before base64).
pub fn block_name(id: &str) -> Result<String, String> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(id)
        .map_err(|_| format!("block id {id:?} is not base64"))?;
    if bytes.is_empty() || bytes.len() > 64 {
        return Err(format!("block id {id:?} must be 1 to 64 bytes before base64"));
    }
    Ok(hex::encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_list_gives_its_ids_in_order() {
        // As azure-storage-blob 12 sends it.
        let xml = "<?xml version='1.0' encoding='utf-8'?>\n<BlockList><Latest>QUFB</Latest><Latest>QkJC</Latest><Committed>Q0ND</Committed></BlockList>";
        assert_eq!(block_ids(xml).unwrap(), ["QUFB", "QkJC", "Q0ND"]);
        assert_eq!(block_ids("<BlockList/>").unwrap(), Vec::<String>::new());
        assert!(block_ids("not xml <").unwrap_err().contains("BlockList"));
        assert!(block_ids("<BlockList><Evil>QUFB</Evil></BlockList>").is_err());
    }

    #[test]
    fn a_block_id_names_a_file_only_as_hex() {
        assert_eq!(block_name("QUFB").unwrap(), "414141");
        assert_eq!(block_name("Li4vZXRj").unwrap(), "2e2e2f657463", "../etc is only hex");
        assert!(block_name("not base64!").is_err());
        assert!(block_name("").is_err());
    }
}
